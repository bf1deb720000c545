"""A real one-node Slurm (scripts/slurm_one_node.sh): `wam-pipe submit` runs the quickstart, reduced, as 2 tasks on
CPU (gloo); Slurm's preemption signal makes the job requeue itself and the next start resume the run dir.

Skips, saying why, where no Slurm answers (start one as root with scripts/slurm_one_node.sh; .ci/run does)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

DEADLINE_S = 900  # the whole job, requeue included: ~4 min on the shared, loaded 2-core machine


def _slurm_ready() -> str | None:
    """None when a Slurm node is idle and submitit importable, else why not."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "Slurm is not installed (run scripts/slurm_one_node.sh as root to get a one-node cluster)"
    try:
        states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 10 s (start Slurm with scripts/slurm_one_node.sh)"
    if states.returncode != 0 or not re.search(r"^(idle|mixed)", states.stdout, re.M):
        return f"no idle Slurm node (sinfo: {(states.stdout + states.stderr).strip()[:200]}); start one with " \
               f"scripts/slurm_one_node.sh"
    try:
        import submitit  # noqa: F401
    except ImportError:
        return "submitit is not installed (pip install -e '.[test]')"
    return None


def _job(job_id: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=20).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def _wait(what: str, check, job_id: str, start: float) -> None:
    while not check():
        state = _job(job_id).get("JobState", "?")
        if state in ("FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"):
            pytest.fail(f"job {job_id} {state} while waiting for {what}")
        if time.monotonic() - start > DEADLINE_S:
            subprocess.run(["scancel", job_id], timeout=20)
            pytest.fail(f"job {job_id} ({state}): no {what} after {DEADLINE_S} s")
        time.sleep(1)


def test_submit_two_tasks_then_requeue_and_resume(repo_root, tmp_path):
    reason = _slurm_ready()
    if reason:
        pytest.skip(reason)
    run_dir = tmp_path / "run"
    epochs = 3
    overrides = [f"vars.data={tmp_path / 'data'}", f"stages.shard-build.out={tmp_path / 'shards'}",
                 "stages.shard-build.synthesize=96", "stages.shard-build.samples_per_shard=16", "vars.img_size=32",
                 f"run.epochs={epochs}", "run.steps_per_epoch=1", "run.eval_every=0", "run.device=cpu",
                 "run.precision=fp32", "run.tensorboard=false", "stages.load.workers=0", "stages.eval.max_images=16"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    submitted = subprocess.run(
        [sys.executable, "-m", "wam_pipe", "submit", str(repo_root / "pipelines" / "quickstart.yaml"), *overrides,
         "--gpus-per-node", "0", "--tasks-per-node", "2", "--time", "30", "--output-dir", str(run_dir)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert submitted.returncode == 0, submitted.stderr
    job_id = re.search(r"submitted 1 job \((\d+)\)", submitted.stdout).group(1)
    start = time.monotonic()
    logs = run_dir / "slurm" / job_id

    # the first epoch's checkpoint is written: preempt (what submitit's own test helper sends: USR2 to the tasks)
    checkpoint = run_dir / "checkpoints" / "last.pt"
    _wait("first checkpoint", checkpoint.is_file, job_id, start)
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True, timeout=20)
    rank0_log = logs / f"{job_id}_0_log.out"
    _wait("requeue", lambda: "Requeued job" in rank0_log.read_text(), job_id, start)
    # Slurm holds a requeued job ~2 min before it may start again (its BeginTime); release it now
    _wait("pending after requeue", lambda: _job(job_id).get("JobState") == "PENDING", job_id, start)
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True, timeout=20)
    _wait("end", lambda: _job(job_id).get("JobState") == "COMPLETED", job_id, start)

    log = rank0_log.read_text()
    assert log.count("Starting with JobEnvironment") == 2 and "global_rank=0(2)" in log
    assert re.search(r"resuming .* at epoch [1-9]", log), log[-2000:]
    assert _job(job_id).get("Restarts") == "1"
    final = torch.load(checkpoint, weights_only=True)
    assert final["epoch"] == epochs
    epochs_logged = [line["epoch"] for line in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines())
                     if line["kind"] == "epoch"]
    assert sorted(set(epochs_logged)) == list(range(epochs))          # every epoch, the interrupted one redone
    assert json.loads((run_dir / "env.json").read_text())["world_size"] == 2
    assert (run_dir / "eval" / "metrics.json").is_file()
