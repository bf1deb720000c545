"""`RunSettings`: the `run:` block of a pipeline file (everything about *how* to run, nothing about *what*)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Literal, Optional

from wam_pipe.core.tracking import logger_problems

_DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(?::(\d+))?")
# (key, least value): counts and cadences; 0 has a meaning only where the docstring says so.
_AT_LEAST = (("epochs", 1), ("steps_per_epoch", 1), ("eval_every", 0), ("log_every", 1), ("checkpoint_every", 1),
             ("keep_checkpoints", 0), ("max_nonfinite_steps", 0))
_ZERO_MEANS = {"eval_every": " (0 = only after the last epoch)", "keep_checkpoints": " (0 = never)"}


@dataclasses.dataclass
class RunSettings:
    """Keys of a pipeline's `run:` block, with their defaults.

    Args:
        output_dir: run directory (config, logs, checkpoints, eval). Default `runs/<name>`.
        seed: base seed; each rank seeds torch with `seed + rank`.
        device: "auto" (CUDA when available, else CPU), "cpu", "cuda" (this rank's GPU) or "cuda:N".
        precision: autocast dtype of the training step: "auto" (bf16 on CUDA and on CPUs with native bf16, else fp32), "fp32", "bf16",
            "fp16" (with a GradScaler).
        epochs: number of training epochs.
        steps_per_epoch: cap on the steps of one epoch (null = one pass over the data), like VideoSeal's
            `iter_per_epoch`; useful to evaluate and checkpoint on a fixed cadence on huge datasets.
        eval_every: evaluate every N epochs (and always after the last); 0 = only after the last.
        log_every: read the on-device metrics and print a log line every N steps (the only host syncs).
        checkpoint_every: write `checkpoints/last.pt` every N epochs (and always after the last).
        keep_checkpoints: also keep `checkpoints/epoch-XXXX.pt` every N epochs (0 = never).
        deterministic: deterministic algorithms and no cudnn.benchmark (slower; for bit-exact resume tests).
        cudnn_benchmark: let cuDNN pick the fastest kernels for the fixed input shapes.
        tf32: allow TF32 matmuls/convolutions on Ampere+ GPUs.
        channels_last: run the models in NHWC memory layout (weights and input images); false feeds them NCHW
            whatever layout the loader delivers. Often faster for convs under autocast on GPU; measure with
            `wam-pipe bench step`.
        fused_optimizer: build the optimizer with `fused=True` (one kernel for all parameters; with fp16 it also
            lets the GradScaler skip inf/NaN steps on the device instead of reading a flag back every step).
            null = on for CUDA when the optimizer has a fused implementation and its config sets neither `fused`
            nor `foreach`; true = always (CPU too; an error if the optimizer has none); false = never.
        ddp_static_graph: DDP `static_graph`; null = on unless `step.grad_accum > 1` or `step.losses.balanced`
            (the parameters used never change between steps, whatever the number of watermarks, but DDP's static
            graph silently stops all-reducing under `no_sync` and with the balancing gradients taken before
            backward; `true` with either is refused). With `find_unused_parameters=False` it saves little.
        ddp_find_unused: DDP `find_unused_parameters`: walk the autograd graph after every forward to find
            parameters without a gradient. Off (the reference's speed fix): every parameter gets a gradient every
            step (zero for an image without watermark), so the walk is pure cost. Turn it on only for a custom model
            with branches some steps skip (DDP then errors without it). Default False.
        ddp_bucket_view: DDP `gradient_as_bucket_view`: gradients live in the all-reduce buckets (no copy into
            them, one gradient-sized buffer less); the step then zeroes gradients instead of freeing them.
        dist_backend: "auto" (nccl on CUDA, gloo on CPU), "nccl" or "gloo".
        loggers: experiment trackers that receive the train/eval scalars, the eval pictures, the resolved config
            and the final hyper-parameters + metrics: any of "tensorboard", "wandb", "mlflow"
            (`wam_pipe.runner.tracking`). null = ["tensorboard"]; [] = none. W&B and MLflow are extras
            (`pip install 'wam-pipe[wandb]'`, `'wam-pipe[mlflow]'`); their credentials and servers come from their
            own environment variables and config files, never from the pipeline.
        project: W&B project / MLflow experiment; null = the pipeline's name.
        tags: tags of the W&B / MLflow run.
        tensorboard: false drops "tensorboard" from `loggers` (a short switch for tests and quick runs).
        max_nonfinite_steps: with fp16, how many consecutive steps the GradScaler may skip for inf/NaN
            gradients before the run stops naming the loss term.
    """

    output_dir: Optional[str] = None
    seed: int = 0
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    epochs: int = 1
    steps_per_epoch: Optional[int] = None
    eval_every: int = 1
    log_every: int = 10
    checkpoint_every: int = 1
    keep_checkpoints: int = 0
    deterministic: bool = False
    cudnn_benchmark: bool = True
    tf32: bool = True
    channels_last: bool = False
    fused_optimizer: Optional[bool] = None
    ddp_static_graph: Optional[bool] = None
    ddp_find_unused: bool = False
    ddp_bucket_view: bool = True
    dist_backend: Literal["auto", "nccl", "gloo"] = "auto"
    loggers: Optional[list[str]] = None
    project: Optional[str] = None
    tags: Optional[list[str]] = None
    tensorboard: bool = True
    max_nonfinite_steps: int = 20

    @property
    def tracker_names(self) -> list[str]:
        """The loggers this run opens (`loggers`, default TensorBoard, less TensorBoard when `tensorboard` is false)."""
        names = ["tensorboard"] if self.loggers is None else list(dict.fromkeys(self.loggers))
        return [n for n in names if n != "tensorboard" or self.tensorboard]

    @classmethod
    def from_dict(cls, data: dict, name: str) -> "RunSettings":
        settings = cls(**data)
        if settings.output_dir is None:
            settings.output_dir = f"runs/{name}"
        return settings


def value_problems(run: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, message) for each `run:` value out of range; `run` holds values of the right types (others are skipped).

    `wam-pipe validate` reports these, so a run never stops on them after hours of shard building.
    """
    problems = []
    for key, least in _AT_LEAST:
        value = run.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value < least:
            problems.append((key, f"must be >= {least}{_ZERO_MEANS.get(key, '')}, got {value}"))
    device = run.get("device")
    if isinstance(device, str) and parse_device(device) is None:
        problems.append(("device", f"unknown device {device!r}; use auto, cpu, cuda or cuda:N"))
    problems.extend(("loggers", message) for message in logger_problems(run.get("loggers")))
    return problems


def parse_device(device: str) -> tuple[str, int | None] | None:
    """The one reading of a `run.device` value: ("auto" | "cpu" | "cuda", index or None) for "auto", "cpu",
    "cuda" and "cuda:N"; None for anything else."""
    found = _DEVICE_PATTERN.fullmatch(device)
    if found is None:
        return None
    index = found.group(1)
    return device.split(":")[0], None if index is None else int(index)
