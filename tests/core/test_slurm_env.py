"""Slurm's variables -> torchrun's (core/slurm_env.py), hostlist expansion included."""

from __future__ import annotations

import os

import pytest

from wam_pipe.core import distributed
from wam_pipe.core.slurm_env import adopt_slurm_variables, expand_hostlist, torchrun_variables


@pytest.mark.parametrize("text, hosts", [
    ("vm", ["vm"]),
    ("node[01-03,7]", ["node01", "node02", "node03", "node7"]),
    ("node[01-03,7],gpu5", ["node01", "node02", "node03", "node7", "gpu5"]),
    ("a1,b[8-10]", ["a1", "b8", "b9", "b10"]),
    ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
    ("x[009-011].cluster", ["x009.cluster", "x010.cluster", "x011.cluster"]),
])
def test_expand_hostlist(text, hosts):
    assert expand_hostlist(text) == hosts


@pytest.mark.parametrize("text", ["node[1-3", "node1-3]", "node[a-b]", "node[3-1]"])
def test_malformed_hostlists_are_refused(text):
    with pytest.raises(ValueError, match="host list"):
        expand_hostlist(text)


SRUN_TASK = {"SLURM_PROCID": "5", "SLURM_STEP_NUM_TASKS": "8", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1",
             "SLURM_STEP_ID": "0", "SLURM_STEP_NODELIST": "gpu[03-06]", "SLURM_NODELIST": "gpu[03-06]",
             "SLURM_JOB_ID": "123456"}


def test_an_srun_task_maps_to_torchrun_variables():
    assert torchrun_variables(dict(SRUN_TASK)) == {
        "RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu03", "MASTER_PORT": str(20000 + 3456)}


def test_torchrun_variables_win():
    assert torchrun_variables({**SRUN_TASK, "RANK": "0", "WORLD_SIZE": "2"}) == {}
    env = {**SRUN_TASK, "MASTER_ADDR": "head", "MASTER_PORT": "29500"}
    assert torchrun_variables(env)["MASTER_ADDR"] == "head" and torchrun_variables(env)["MASTER_PORT"] == "29500"


def test_a_batch_script_is_not_a_task():
    """The batch step has SLURM_PROCID=0 and the job's SLURM_NTASKS but no step: it must not wait for peers."""
    batch = {k: v for k, v in SRUN_TASK.items() if k not in ("SLURM_STEP_ID", "SLURM_STEP_NUM_TASKS")}
    assert torchrun_variables(batch) == {}
    assert torchrun_variables({}) == {}


def test_one_task_needs_no_rendezvous():
    env = {**SRUN_TASK, "SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "1", "SLURM_LOCALID": "0"}
    assert torchrun_variables(env) == {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}


def test_env_coordinates_reads_slurm(monkeypatch):
    # a private environment: what env_coordinates adopts must not leak into other tests
    monkeypatch.setattr(os, "environ", {"PATH": "/usr/bin", **SRUN_TASK})
    assert distributed.env_coordinates() == (5, 8, 1)
    assert os.environ["MASTER_ADDR"] == "gpu03" and os.environ["RANK"] == "5"
    assert adopt_slurm_variables() is False             # already adopted: nothing more to set
