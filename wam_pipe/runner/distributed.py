"""Process-group set-up from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK), nothing else.

No dependence on CUDA_VISIBLE_DEVICES or SLURM variables: torchrun (or `wam-pipe run --nproc N`, which launches
torchrun) sets the three variables on every node. NCCL on GPUs, gloo on CPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import torch
import torch.distributed as dist

from wam_pipe.errors import UserError
from wam_pipe.runner.context import RunContext


def env_coordinates() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's variables; (0, 1, 0) when launched without torchrun."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def pick_device(requested: str, local_rank: int) -> torch.device:
    if requested == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"run.device: '{requested}' but no CUDA device is visible; use run.device=cpu or auto")
        return torch.device(requested) if ":" in requested else torch.device("cuda", local_rank)
    if requested == "cpu":
        return torch.device("cpu")
    raise UserError(f"run.device: unknown device '{requested}'; use auto, cpu, cuda or cuda:N")


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


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def launch_torchrun(nproc: int, argv: list[str]) -> int:
    """Re-run this command under torchrun with `nproc` processes on this node (`wam-pipe run --nproc N`)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "wam_pipe", *argv]
    return subprocess.call(command)
