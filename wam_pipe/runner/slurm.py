"""Runs on Slurm through submitit (`wam-pipe submit`): the job, its sbatch parameters, resume on requeue.

    one run:   sbatch --nodes N --ntasks-per-node T (one task per GPU) --requeue --signal USR2@90
               srun python -m submitit.core._submit <run_dir>/slurm/%j   -> SlurmRun() in every task
    a sweep:   the same as a job array, one array task per point, logs in <sweep_dir>/slurm/<array>_<i>/

Every task composes the pipeline and calls `run_pipeline`, which sets torch.distributed up from the Slurm variables
(core/slurm_env.py). On preemption or when the time limit nears, Slurm sends USR2; submitit's handler on rank 0 calls
`SlurmRun.checkpoint`, which returns the same run (never with --overwrite) for submitit to pickle, and requeues the
job (`scontrol requeue`). The restarted job finds the run dir holding a run of the same pipeline and resumes it from
`checkpoints/last.pt` (written every `run.checkpoint_every` epochs; the epoch in progress is redone). submitit
requeues after a timeout at most `max_num_timeout` times (3), after a preemption always.

submitit is an optional dependency (`pip install 'wam-pipe[slurm]'`): imported only where a job is made or submitted.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from wam_pipe.config import compose
from wam_pipe.core.errors import UserError
from wam_pipe.runner.run import run_pipeline

SIGNAL_DELAY_S = 90
_TIME = re.compile(r"^(?:(\d+)-)?(\d+):(\d+)(?::(\d+))?$")


def submitit_module() -> Any:
    try:
        import submitit
    except ImportError as err:
        raise UserError("submit needs submitit: pip install 'wam-pipe[slurm]' (or pip install submitit)") from err
    return submitit


@dataclasses.dataclass
class SlurmRun:
    """What every task of the job runs: one run of `pipeline` with `overrides` in `output_dir`.

    `cwd` is the submission directory: relative paths in the pipeline (data, shards) mean what they meant there.
    """

    pipeline: str
    overrides: list[str]
    output_dir: str
    cwd: str
    overwrite: bool = False
    only: str | None = None

    def __call__(self) -> str:
        os.chdir(self.cwd)
        pipeline = compose(self.pipeline, self.overrides)
        # --overwrite means the first start: a job that Slurm itself requeued (node failure) restarts from the
        # original pickle, and must resume, not wipe, what its first start did
        first_start = int(os.environ.get("SLURM_RESTART_COUNT") or 0) == 0
        return str(run_pipeline(pipeline, output_dir=self.output_dir, overwrite=self.overwrite and first_start,
                                only=self.only))

    def checkpoint(self) -> Any:
        """submitit calls this on rank 0 when Slurm signals preemption or the time limit: the state to restart
        from is already in the run dir (last.pt), so the job to requeue is this run, resuming, never overwriting."""
        submitit = submitit_module()
        return submitit.helpers.DelayedSubmission(dataclasses.replace(self, overwrite=False))


def minutes(text: str) -> int:
    """`--time`: minutes (`90`) or Slurm's `[D-]HH:MM[:SS]` (`1-00:00`, `02:30:00`) -> whole minutes (at least 1)."""
    if text.isdigit():
        return max(1, int(text))
    match = _TIME.match(text)
    if not match:
        raise UserError(f"--time {text}: give minutes (90) or [D-]HH:MM[:SS] (02:30:00, 1-00:00)")
    days, hours, mins, secs = (int(g or 0) for g in match.groups())
    return max(1, days * 1440 + hours * 60 + mins + (1 if secs else 0))


def sbatch_parameters(name: str, nodes: int, gpus_per_node: int, tasks_per_node: int | None, partition: str | None,
                      time_min: int, cpus_per_task: int | None, signal_delay_s: int = SIGNAL_DELAY_S) -> dict[str, Any]:
    """submitit's SlurmExecutor parameters (sbatch's names): one task per GPU unless `tasks_per_node` says."""
    params: dict[str, Any] = {
        "job_name": name, "nodes": nodes, "ntasks_per_node": tasks_per_node or max(gpus_per_node, 1),
        "time": time_min, "signal_delay_s": signal_delay_s,
        "additional_parameters": {"requeue": True},  # scontrol requeue works whatever the cluster's JobRequeue
    }
    if gpus_per_node:
        params["gpus_per_node"] = gpus_per_node
    if partition:
        params["partition"] = partition
    if cpus_per_task:
        params["cpus_per_task"] = cpus_per_task
    return params


def job_script(params: dict[str, Any], folder: Path, array: int | None = None) -> str:
    """The sbatch script submitit writes for these parameters (for --dry-run: no Slurm needed)."""
    submitit_module()  # the one-line error when it is missing
    from submitit.slurm.slurm import _make_sbatch_string  # the function SlurmExecutor writes its script with

    command = " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit", shlex.quote(str(folder))])
    extra = {"map_count": array} if array else {}
    return _make_sbatch_string(command=command, folder=folder, **params, **extra)


def check_slurm_reachable() -> None:
    """sbatch on PATH and the controller answering `sinfo` within 20 s; otherwise a UserError (exit 2)."""
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise UserError("submit: no Slurm here (sbatch/srun not on PATH); run it on a Slurm login node, or add "
                        "--dry-run to print the job script")
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UserError(f"submit: Slurm not reachable (sinfo: {err}); check the controller, or add --dry-run") from err
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["no answer"])[0]
        raise UserError(f"submit: Slurm not reachable (sinfo: {first}); check the controller, or add --dry-run")


def submit(runs: list[SlurmRun], params: dict[str, Any], folder: Path) -> list[Any]:
    """Submit one job (one run) or a job array (several runs); returns submitit's jobs."""
    submitit = submitit_module()
    executor = submitit.SlurmExecutor(folder=folder)
    executor.update_parameters(**params)
    if len(runs) == 1:
        return [executor.submit(runs[0])]
    with executor.batch():
        jobs = [executor.submit(run) for run in runs]
    return jobs
