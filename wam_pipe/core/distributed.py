"""Process-group set-up from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT).

torchrun (or `wam-pipe run --nproc N`, which launches torchrun) sets them on every node; under `srun` they are
derived from Slurm's variables first (core/slurm_env.py; torchrun's win when both are set). No dependence on
CUDA_VISIBLE_DEVICES. NCCL on GPUs, gloo on CPU.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

import torch
import torch.distributed as dist

from wam_pipe.core.errors import UserError
from wam_pipe.core.context import RunContext
from wam_pipe.core.settings import parse_device
from wam_pipe.core.slurm_env import adopt_slurm_variables


def env_coordinates() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's variables (set from Slurm's first in an srun task);
    (0, 1, 0) when launched by neither."""
    adopt_slurm_variables()
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def pick_device(requested: str, local_rank: int) -> torch.device:
    """The device of `requested` (a `run.device` value, read by `parse_device` as validation reads it): "cuda"
    and "auto" with CUDA mean this rank's GPU (`local_rank`)."""
    parsed = parse_device(requested)
    if parsed is None:
        raise UserError(f"run.device: unknown device '{requested}'; use auto, cpu, cuda or cuda:N")
    kind, index = parsed
    if kind == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"run.device: '{requested}' but no CUDA device is visible; use run.device=cpu or auto")
        return torch.device("cuda", local_rank if index is None else index)
    return torch.device("cpu")


def init_process_group(device: torch.device, backend: str, world_size: int) -> None:
    if world_size <= 1 or dist.is_initialized():
        return
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    kwargs = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend=backend, init_method="env://", timeout=timedelta(minutes=30), **kwargs)


def barrier(ctx: RunContext) -> None:
    if ctx.distributed and dist.is_initialized():
        if ctx.device.type == "cuda":
            dist.barrier(device_ids=[ctx.device.index])
        else:
            dist.barrier()


# How long a rank that lost a peer waits before it exits, so that the peer's own exit (and code) is seen first.
PEER_LOSS_GRACE_S = 5.0
_PEER_LOSS = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")


def is_peer_loss(err: BaseException) -> bool:
    """The collective failed because another rank went away (it stopped on its own error, or was killed): gloo
    and NCCL raise a RuntimeError naming the lost connection. The message worth showing is that rank's, not this
    rank's traceback."""
    if isinstance(err, getattr(dist, "DistNetworkError", ())):
        return True
    return isinstance(err, RuntimeError) and any(text in str(err) for text in _PEER_LOSS)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def launch_torchrun(nproc: int, argv: list[str]) -> int:
    """Re-run this command under torchrun with `nproc` processes on this node (`wam-pipe run --nproc N`).

    Same as `torchrun --standalone --nproc-per-node=N -m wam_pipe ARGV` (a free rendezvous port on localhost,
    OMP_NUM_THREADS=1 per process unless set), run in this process so that a failed rank ends the command with that
    rank's exit code (2 for a user mistake, already printed by the rank as one line) instead of torchrun's traceback.
    Several nodes: run torchrun yourself with its `--nnodes/--node-rank/--rdzv-*` flags (docs/speed.md).
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    args = parse_args(["--standalone", f"--nproc-per-node={nproc}", "--module", "wam_pipe", *argv])
    try:
        run(args)
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        # A rank that stopped on the user's mistake (exit 2) printed the line that matters; the others only lost it.
        user = sorted((r, f) for r, f in err.failures.items() if f.exitcode == 2)
        if user:
            rank, failure = user[0]
        code = failure.exitcode if failure.exitcode > 0 else 1
        print(f"rank {rank} stopped with exit code {failure.exitcode}; the other ranks were stopped too",
              file=sys.stderr)
        return code
    return 0
