"""Building and timing the arms of `wam-pipe bench step`.

Arms whose step configuration is identical share one built `Step` (e.g. `default` and `sync_every_step` train the
same model in turn), and arms whose load configuration is identical share one `Load`, so an ablation holds one
model per distinct configuration. Every chunk re-applies the arm's global switches (cuDNN, TF32, determinism) and
re-seeds the RNGs from the round number, so in a round every arm draws the same masks, messages and augmentations.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import torch

from wam_pipe.bench.step_arms import Arm
from wam_pipe.config import build_stages, compose
from wam_pipe.core import distributed
from wam_pipe.core.precision import resolve_precision
from wam_pipe.core.seeding import seed_everything
from wam_pipe.core.errors import UserError
from wam_pipe.core.context import RunContext
from wam_pipe.runner.meter import MetricMeter
from wam_pipe.runner.run import configure_torch
from wam_pipe.core.settings import RunSettings


@dataclasses.dataclass
class Chunk:
    """One timed run of an arm: `steps` training steps (or batch fetches, for a step-free loader arm)."""

    images: int  # across all ranks
    seconds: float
    waiting: float
    cpu_seconds: float  # of this process
    peak_step_bytes: Optional[int]
    local_images: int = 0  # of this rank

    @property
    def cpu_ms_per_image(self) -> float:
        return 1000 * self.cpu_seconds / max(self.local_images, 1)

    @property
    def img_per_s(self) -> float:
        return self.images / max(self.seconds, 1e-9)


@dataclasses.dataclass
class ArmRuntime:
    """An arm, built: its settings, context, step, augment, load and (memory mode) device-resident batches."""

    arm: Arm
    settings: RunSettings
    ctx: RunContext
    step: Any
    augment: Any
    load: Any
    batches: list[dict[str, Any]]
    epoch: int
    resident_bytes: int = 0
    loader_epoch: int = 0


def apply_global_switches(settings: RunSettings, device: torch.device) -> None:
    """cuDNN benchmark/determinism and TF32 of this arm (process-global, so set before each of its chunks)."""
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic = False
    configure_torch(settings, device)


def device_sync(device: torch.device) -> None:
    """Wait for the device's queued work, so the timer closes on finished work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _key(*parts: Any) -> str:
    return json.dumps(parts, sort_keys=True, default=str)


class Workspace:
    """Builds arms from one pipeline file and the command line's overrides, sharing identical steps and loads.

    Args:
        pipeline: the pipeline file.
        overrides: the command line's overrides (every arm's overrides come on top).
        coordinates: (rank, world_size, local_rank) of this process.
        run_dir: scratch directory for the RunContext (nothing is written there by the bench itself).
        steps: steps per timed chunk (loader arms' epochs are cut to this many batches).
        distinct_batches: how many different batches memory mode cycles through.
    """

    def __init__(self, pipeline: str, overrides: list[str], coordinates: tuple[int, int, int], run_dir: Path,
                 steps: int, distinct_batches: int):
        self.pipeline, self.overrides = pipeline, list(overrides)
        self.rank, self.world_size, self.local_rank = coordinates
        self.run_dir, self.steps, self.distinct_batches = run_dir, steps, distinct_batches
        self._steps: dict[str, tuple[Any, Any, RunContext]] = {}
        self._loads: dict[str, Any] = {}
        self._batches: dict[str, list[dict[str, Any]]] = {}

    def compose(self, arm: Arm) -> Any:
        return compose(self.pipeline, [*self.overrides, *arm.overrides])

    def build(self, arm: Arm) -> ArmRuntime:
        pipeline = self.compose(arm)
        resolved = pipeline.resolved
        for kind in ("load", "step"):
            if kind not in resolved["stages"]:
                raise UserError(f"{pipeline.file}: bench step needs a '{kind}' stage (stages.{kind})")
        settings = RunSettings.from_dict(dict(resolved.get("run") or {}), pipeline.name)
        device = distributed.pick_device(settings.device, self.local_rank)
        precision = resolve_precision(settings.precision, device)
        stages = build_stages(resolved, pipeline.file)
        step_settings = [getattr(settings, key) for key in type(stages["step"]).RUN_SETTINGS]
        step_key = _key(resolved["stages"]["step"], resolved["stages"].get("augment"), precision, str(device),
                        step_settings, settings.seed)
        if step_key not in self._steps:
            ctx = RunContext(run_dir=self.run_dir, device=device, seed=settings.seed, rank=self.rank,
                             world_size=self.world_size, local_rank=self.local_rank, precision=precision,
                             log=lambda message: None)
            apply_global_switches(settings, device)
            step = stages["step"]
            step.setup(ctx, dataclasses.replace(settings, epochs=1, steps_per_epoch=self.steps))
            step.train()
            self._steps[step_key] = (step, stages.get("augment"), ctx)
        step, augment, ctx = self._steps[step_key]
        load = self._load(arm, resolved["stages"]["load"], stages["load"], ctx)
        batches = self._memory_batches(load, resolved["stages"]["load"], ctx) if arm.mode == "memory" else []
        losses = step.cfg.losses
        epoch = losses.disc_start if losses.uses_discriminator else 0  # the adversarial terms on, if configured
        return ArmRuntime(arm, settings, ctx, step, augment, load, batches, epoch)

    def _load(self, arm: Arm, node: dict[str, Any], load: Any, ctx: RunContext) -> Any:
        key = _key(node, arm.mode)
        if key not in self._loads:
            if arm.mode == "loader":
                # An epoch of exactly `steps` batches: each chunk is a whole epoch, as in training (a partial epoch
                # would leave prefetched batches for the next epoch's start to drain).
                cap = self.steps * load.batch_size * self.world_size
                load.max_samples = cap if load.max_samples is None else min(load.max_samples, cap)
            load.setup(ctx)
            self._loads[key] = load
        return self._loads[key]

    def _memory_batches(self, load: Any, node: dict[str, Any], ctx: RunContext) -> list[dict[str, Any]]:
        key = _key(node, str(ctx.device))
        if key not in self._batches:
            wanted = max(1, min(self.distinct_batches, load.batches_per_epoch))
            batches = []
            iterator = load.epoch(0)
            for batch in iterator:
                batches.append({"images": batch["images"].to(ctx.device), "masks": batch["masks"].to(ctx.device)})
                if len(batches) == wanted:
                    break
            iterator.close()
            self._batches[key] = batches
        return self._batches[key]


def resident_bytes(step: Any) -> int:
    """Bytes of what a step keeps between steps: parameters, gradients, optimizer state (both optimizers)."""
    tensors: list[torch.Tensor] = []
    for module in (step.model, step.discriminator):
        if module is not None:
            tensors += [p for p in module.parameters()] + [p.grad for p in module.parameters() if p.grad is not None]
    for optimizer in (step.optimizer, step.disc_optimizer):
        if optimizer is not None:
            for values in optimizer.state.values():
                tensors += [v for v in values.values() if isinstance(v, torch.Tensor)]
    seen, total = set(), 0
    for tensor in tensors:
        if tensor.device.type != "cpu" or step.ctx.device.type == "cpu":
            pointer = tensor.data_ptr()
            if pointer not in seen:
                seen.add(pointer)
                total += tensor.numel() * tensor.element_size()
    return total


def run_chunk(runtime: ArmRuntime, steps: int, round_index: int) -> Chunk:
    """Time `steps` steps of the arm (a whole epoch for loader arms). Raises RunFailure on a non-finite loss."""
    ctx, settings = runtime.ctx, runtime.settings
    apply_global_switches(settings, ctx.device)
    seed_everything(settings.seed, ctx.rank, round_index)
    distributed.barrier(ctx)
    device_sync(ctx.device)
    if ctx.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(ctx.device)
    base = torch.cuda.memory_allocated(ctx.device) if ctx.device.type == "cuda" else 0
    cpu_start, start = time.process_time(), time.perf_counter()
    if runtime.arm.mode == "memory":
        images, waiting = _memory_steps(runtime, steps), 0.0
    else:
        images, waiting = _loader_steps(runtime, steps)
    device_sync(ctx.device)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak = torch.cuda.max_memory_allocated(ctx.device) - base if ctx.device.type == "cuda" else None
    return Chunk(images * ctx.world_size, seconds, waiting, cpu_seconds, peak, local_images=images)


def _train(runtime: ArmRuntime, batches: Iterator[dict[str, Any]], meter: MetricMeter) -> tuple[int, float]:
    """Train on `batches`, reading the metrics every `read_every` steps; returns (images, seconds waited)."""
    read_every = runtime.arm.read_every or runtime.settings.log_every
    images, waiting, index = 0, 0.0, 0
    while True:
        waited = time.perf_counter()
        batch = next(batches, None)
        if batch is None:
            break
        waiting += time.perf_counter() - waited
        images += int(batch["images"].shape[0])
        if runtime.arm.step_free:
            batch["images"].to(runtime.ctx.device, non_blocking=True)
            batch["masks"].to(runtime.ctx.device, non_blocking=True)
        else:
            meter.update(runtime.step.train_step(batch, runtime.augment, runtime.epoch), index)
        index += 1
        if index % read_every == 0:
            meter.read()
    meter.read()  # the last read closes the chunk on finished work, as a log line would
    return images, waiting


def _memory_steps(runtime: ArmRuntime, steps: int) -> int:
    batches = (runtime.batches[i % len(runtime.batches)] for i in range(steps))
    images, _ = _train(runtime, batches, MetricMeter.for_run(runtime.ctx.precision,
                                                              runtime.settings.max_nonfinite_steps))
    return images


def _loader_steps(runtime: ArmRuntime, steps: int) -> tuple[int, float]:
    runtime.loader_epoch += 1
    iterator = runtime.load.epoch(runtime.loader_epoch)
    limited = (batch for _, batch in zip(range(steps), iterator))
    meter = MetricMeter.for_run(runtime.ctx.precision, runtime.settings.max_nonfinite_steps)
    try:
        return _train(runtime, limited, meter)
    finally:
        iterator.close()
