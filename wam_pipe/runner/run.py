"""`run_pipeline`: from a validated pipeline to a finished run.

    build every stage (cheap constructors)  ->  process group + device  ->  run dir (new / resume / overwrite)
    -> shard-build (rank 0; others wait)     ->  train (load, augment, step, eval)  or  eval alone
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path

import torch

from wam_pipe.config import Pipeline, build_stages
from wam_pipe.config.checkpoint_model import load_watermarker
from wam_pipe.core.errors import RunFailure, UserError
from wam_pipe.core import distributed
from wam_pipe.core.context import RunContext
from wam_pipe.core.precision import resolve_precision
from wam_pipe.core.run_lock import DirLock
from wam_pipe.core.checkpoint import checkpoint_step
from wam_pipe.runner.rundir import inspect_run_dir, write_run_files
from wam_pipe.runner.tracking import final_metrics, flat_hparams, open_trackers
from wam_pipe.core.seeding import seed_everything
from wam_pipe.core.settings import RunSettings
from wam_pipe.runner.train import train
from wam_pipe.stages.slots import RUNNABLE_ALONE, Stages, slot_problems

def configure_torch(settings: RunSettings, device: torch.device) -> None:
    """Global speed/determinism switches, from `run:` (cudnn.benchmark, TF32, deterministic algorithms)."""
    if settings.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    else:
        torch.backends.cudnn.benchmark = settings.cudnn_benchmark
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = settings.tf32
        torch.backends.cudnn.allow_tf32 = settings.tf32
        torch.set_float32_matmul_precision("high" if settings.tf32 else "highest")


def _check_slots(stages: Stages, only: str | None, file: str) -> None:
    """`--only SLOT` names a slot that can run alone and that the pipeline fills; the rules between slots hold
    (validation checks them too, but a step of a custom class is only known to be a step once built)."""
    for key, message in slot_problems(stages.as_dict(), built=True):
        raise UserError(f"{file}: stages.{key}: {message}")
    if only is not None:
        if only not in RUNNABLE_ALONE:
            raise UserError(f"--only {only}: only {', '.join(RUNNABLE_ALONE)} can run alone")
        if stages.get(only) is None:
            raise UserError(f"--only {only}: {file} has no '{only}' stage (it has {', '.join(stages.present())})")


def run_pipeline(pipeline: Pipeline, output_dir: str | None = None, overwrite: bool = False,
                 only: str | None = None) -> Path:
    """Run the pipeline; returns the run directory."""
    settings = RunSettings.from_dict(dict(pipeline.resolved.get("run") or {}), pipeline.name)
    # Models are initialised while the stages are built: seed first, identically on every rank.
    seed_everything(settings.seed, rank=0)
    stages = Stages.from_built(build_stages(pipeline.resolved, pipeline.file))
    _check_slots(stages, only, pipeline.file)
    run_dir = Path(output_dir or settings.output_dir)
    rank, world_size, local_rank = distributed.env_coordinates()
    # Rank 0 writes the run dir: it holds the dir's lock for the whole run (the others exit with it under torchrun).
    with DirLock(run_dir, "--output-dir") if rank == 0 else contextlib.nullcontext():
        _run_locked(pipeline, settings, stages, run_dir, overwrite, only, rank, world_size, local_rank)
    return run_dir


def _run_locked(pipeline: Pipeline, settings: RunSettings, stages: Stages, run_dir: Path, overwrite: bool,
                only: str | None, rank: int, world_size: int, local_rank: int) -> None:
    device = distributed.pick_device(settings.device, local_rank)
    # Read-only decision on every rank before rank 0 writes anything, so all ranks agree.
    mode, resume_from = inspect_run_dir(run_dir, pipeline.resolved, overwrite)
    distributed.init_process_group(device, settings.dist_backend, world_size)
    ctx = RunContext(run_dir=run_dir, device=device, seed=settings.seed, rank=rank, world_size=world_size,
                     local_rank=local_rank, precision=resolve_precision(settings.precision, device))
    if not ctx.is_main:
        ctx.log = lambda message: None
    failed = True
    try:
        configure_torch(settings, device)
        seed_everything(settings.seed, rank)
        if ctx.is_main:
            write_run_files(run_dir, pipeline.to_yaml(), pipeline.to_yaml(resolved=True), pipeline.overrides,
                            str(device), world_size, fresh=mode == "overwrite")
        distributed.barrier(ctx)
        start_step = checkpoint_step(resume_from) if resume_from is not None else 0
        ctx.tracker = open_trackers(ctx, settings.tracker_names, pipeline.name, settings.project,
                                    settings.tags or [], start_step)
        if start_step == 0:
            ctx.tracker.log_text("config", pipeline.to_yaml(resolved=True))
        _run_stages(ctx, settings, stages, pipeline, only, resume_from)
        if stages.step is not None and only in (None, "step"):
            ctx.tracker.log_summary(flat_hparams(pipeline.resolved), final_metrics(run_dir))
        failed = False
    except Exception as err:
        if world_size > 1 and distributed.is_peer_loss(err):
            # Let the rank that stopped on its own error exit first: torchrun reports the first exit it sees, and
            # that rank's code (2 for the user's mistake) and message are the ones that matter.
            time.sleep(distributed.PEER_LOSS_GRACE_S)
            raise RunFailure(f"rank {rank}: another rank stopped (its own message says why); this rank stopped "
                             "with it") from None
        raise
    finally:
        ctx.tracker.close(failed)
        distributed.shutdown()


def _run_stages(ctx: RunContext, settings: RunSettings, stages: Stages, pipeline: Pipeline,
                only: str | None, resume_from: Path | None) -> None:
    if stages.shard_build is not None and only in (None, "shard-build"):
        if ctx.is_main:
            stages.shard_build.run(ctx)
        distributed.barrier(ctx)
    if only == "shard-build":
        return
    if stages.step is not None and only in (None, "step"):
        training = dataclasses.replace(stages, eval=None) if only == "step" else stages
        train(ctx, settings, training, ctx.run_dir, pipeline.to_yaml(resolved=True), resume_from)
    elif stages.eval is not None and only in (None, "eval"):
        # Evaluation alone: the model is rebuilt from the checkpoint's own config (validated like a pipeline).
        path = stages.eval.checkpoint_path(ctx)
        stages.eval.evaluate_checkpoint(ctx, load_watermarker(path, ctx.device, stages.eval.allow_targets))
