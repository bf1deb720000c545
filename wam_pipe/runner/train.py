"""The training loop: one explicit loop over epochs and batches that owns the order of everything.

    for epoch:                                   seeds derived from (seed, rank, epoch): exact resume at any world size
        for batch in load.epoch(epoch):          this rank's share; every rank gets the same number of batches
            step.train_step(batch, augment)      embed -> splice -> augment -> extract -> losses -> update
            every log_every steps: read metrics  the only host sync of the loop
        scheduler; eval every eval_every epochs; checkpoint every checkpoint_every epochs (rank 0 writes)
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from wam_pipe.core import distributed
from wam_pipe.core import run_layout as layout
from wam_pipe.core.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from wam_pipe.core.context import RunContext
from wam_pipe.runner.meter import MetricMeter
from wam_pipe.core.seeding import seed_everything
from wam_pipe.core.settings import RunSettings
from wam_pipe.runner.train_log import TrainLog
from wam_pipe.stages.slots import Stages


@dataclasses.dataclass
class LoopClock:
    """Wall time of a logging window, and how much of it the loop spent waiting for the loader."""

    start: float = dataclasses.field(default_factory=time.perf_counter)
    waiting: float = 0.0
    images: int = 0

    def summary(self, world_size: int) -> dict[str, float]:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        return {"img_per_s": self.images * world_size / elapsed, "data_wait": self.waiting / elapsed}


def train(ctx: RunContext, settings: RunSettings, stages: Stages, run_dir: Path, config_yaml: str,
          resume_from: Path | None) -> None:
    load, augment, step, evaluator = stages.load, stages.augment, stages.step, stages.eval
    load.setup(ctx)
    steps_per_epoch = min(load.batches_per_epoch, settings.steps_per_epoch or math.inf)
    # The step reads the run's switches from the settings, with steps_per_epoch as this loop will run it.
    step.setup(ctx, dataclasses.replace(settings, steps_per_epoch=int(steps_per_epoch)))
    if evaluator is not None:
        evaluator.setup(ctx)
    start_epoch, global_step = 0, 0
    if resume_from is not None:
        checkpoint = load_checkpoint(resume_from, map_location=ctx.device)
        step.load_state_dict(checkpoint)
        set_rng_state(checkpoint["rng"])
        start_epoch, global_step = checkpoint["epoch"], checkpoint["step"]
        ctx.log(f"resuming {run_dir} at epoch {start_epoch} (step {global_step}) from {resume_from}")
    # Records of steps after the checkpoint (a run killed mid-epoch) are dropped: those steps are redone.
    log = TrainLog(ctx, run_dir, start_step=global_step, total_steps=settings.epochs * int(steps_per_epoch))
    if start_epoch >= settings.epochs:
        ctx.log(f"{run_dir} already finished its {settings.epochs} epochs; to train longer set run.epochs, to start "
                f"again use --overwrite")
        return
    ctx.log(f"training {settings.epochs} epochs x {int(steps_per_epoch)} steps on {ctx.world_size} x {ctx.device} "
            f"({ctx.precision})")

    for epoch in range(start_epoch, settings.epochs):
        seed_everything(settings.seed, ctx.rank, epoch)
        step.train()
        meter = MetricMeter.for_run(ctx.precision, settings.max_nonfinite_steps)
        # The epoch meter reports the failures of the per-log meter's NaN/inf watch, which runs once per step.
        epoch_meter, clock = MetricMeter.sharing_watch(meter), LoopClock()
        batches = iter(load.epoch(epoch))
        # A bar on a terminal (rank 0); log lines carry the ETA either way.
        bar = tqdm(total=int(steps_per_epoch), desc=f"epoch {epoch}", leave=False, dynamic_ncols=True,
                   disable=not (ctx.is_main and sys.stderr.isatty()))
        for _ in range(int(steps_per_epoch)):
            waited = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                break
            clock.waiting += time.perf_counter() - waited
            clock.images += int(batch["images"].shape[0])
            metrics = step.train_step(batch, augment, epoch)
            global_step += 1  # steps count from 1, in log lines and failure messages alike
            bar.update()
            meter.update(metrics, global_step)
            epoch_meter.update(metrics, global_step)
            if global_step % settings.log_every == 0:
                averages = meter.read()  # waits for the device, so the window's time covers its queued work
                speed = clock.summary(ctx.world_size)
                values = {**averages, "lr": step.current_lr(), **speed}
                log.log("train", epoch, global_step, values,
                        extra=f"lr {values['lr']:.2e} | {speed['img_per_s']:.1f} img/s, data wait "
                              f"{100 * speed['data_wait']:.0f}%")
                clock = LoopClock()
        bar.close()
        log.log("epoch", epoch, global_step, {**epoch_meter.read(), "lr": step.current_lr()})
        step.end_epoch()

        last = epoch == settings.epochs - 1
        if evaluator is not None and (last or (settings.eval_every and (epoch + 1) % settings.eval_every == 0)):
            evaluator.evaluate(ctx, step.watermarker, epoch=epoch, step=global_step)
        if last or (epoch + 1) % settings.checkpoint_every == 0:
            _save(ctx, settings, step, run_dir, config_yaml, epoch, global_step)


def _save(ctx: RunContext, settings: RunSettings, step: Any, run_dir: Path, config_yaml: str, epoch: int,
          global_step: int) -> None:
    if ctx.is_main:
        payload = {**step.state_dict(), "epoch": epoch + 1, "step": global_step, "rng": rng_state(),
                   "config": config_yaml}
        save_checkpoint(layout.last_checkpoint(run_dir), payload)
        if settings.keep_checkpoints and (epoch + 1) % settings.keep_checkpoints == 0:
            save_checkpoint(layout.epoch_checkpoint(run_dir, epoch), payload)
    distributed.barrier(ctx)

