"""One evaluation pass over this rank's batches: grid (+ multi-watermark) metrics, reduced across ranks.

    for batch in this rank's share (each sample exactly once across ranks):
        messages from (seed, key)  ->  grid cells  ->  multi-watermark cells      (sums stay on the device)
    all-reduce the packed sums (one collective per table)  ->  rows (the one host read)
    rank 0: grid.png from its first batch

The model runs without gradients, in eval mode, under the run's autocast; its train/eval mode is restored after.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable

import torch

from wam_pipe.augment import non_overlapping_boxes
from wam_pipe.eval.grid import Grid, fixed_masks
from wam_pipe.eval.messages import messages_for
from wam_pipe.eval.multi import evaluate_multi_batch, multi_table
from wam_pipe.eval.showcase import save_showcase
from wam_pipe.eval.single import evaluate_grid_batch, grid_table
from wam_pipe.core.imaging import normalize_uint8
from wam_pipe.core.progress import progress
from wam_pipe.core.context import RunContext

# Seeds the multi-watermark boxes (shared by every image, as the reference samples them once) apart from messages.
BOXES_SEED_OFFSET = 7919


@dataclasses.dataclass
class EvalPlan:
    """What to evaluate (from the eval stage's configuration)."""

    grid: Grid
    seed: int = 0
    multi_wm: bool = False
    multi_wm_max: int = 5
    multi_wm_sources: tuple[str, ...] = ("boxes", "segm")
    pictures: int = 4


@dataclasses.dataclass
class EvalOutcome:
    """Reduced results (identical on every rank)."""

    results: list[dict[str, Any]]
    multi_wm: list[dict[str, Any]]
    images: int


@dataclasses.dataclass
class _BatchInputs:
    imgs: torch.Tensor  # (B, 3, H, W) model space
    segm: torch.Tensor  # (B, K, H, W) loader masks
    msgs: torch.Tensor  # (B, 1 + multi, nbits)


def _inputs(batch: dict[str, Any], plan: EvalPlan, nbits: int, device: torch.device) -> _BatchInputs:
    if "keys" not in batch:
        raise ValueError("eval: batches need 'keys' (the messages of an image are derived from its key)")
    imgs = normalize_uint8(batch["images"].to(device, non_blocking=True))
    segm = batch["masks"].to(device, non_blocking=True)
    count = 1 + (plan.multi_wm_max if plan.multi_wm else 0)
    msgs = messages_for(batch["keys"], count, nbits, plan.seed, device)
    return _BatchInputs(imgs, segm, msgs)


def evaluate_batches(ctx: RunContext, model: Any, batches: Iterable[dict[str, Any]], plan: EvalPlan,
                     picture_path: Path | None, total_batches: int | None = None) -> EvalOutcome:
    """Evaluate `model` on this rank's `batches`; every rank must call it (the reduction is collective).

    Rank 0 shows progress over `total_batches` (batches/s, ETA) on stderr: a bar on a terminal, a line every 30 s
    elsewhere; other ranks are silent.
    """
    device = ctx.device
    was_training = model.training
    model.eval()
    try:
        table = grid_table(plan.grid, device)
        multi = multi_table(list(plan.multi_wm_sources), plan.multi_wm_max, device) if plan.multi_wm else None
        shapes: dict[tuple[int, int], tuple[dict[str, torch.Tensor], torch.Tensor]] = {}
        showcase = None
        bar = progress(total_batches, "eval", "batch", enabled=ctx.is_main)
        for batch in batches:
            inputs = _inputs(batch, plan, model.nbits, device)
            size = (inputs.imgs.shape[-2], inputs.imgs.shape[-1])
            if size not in shapes:
                boxes_gen = torch.Generator().manual_seed(plan.seed + BOXES_SEED_OFFSET)
                boxes = non_overlapping_boxes(plan.multi_wm_max, *size, boxes_gen, device) if plan.multi_wm else None
                shapes[size] = (fixed_masks(*size, device), boxes)
            fixed, boxes = shapes[size]
            evaluate_grid_batch(model, plan.grid, table, inputs.imgs, inputs.segm, inputs.msgs[:, 0], fixed,
                                ctx.precision)
            if multi is not None:
                evaluate_multi_batch(model, multi, list(plan.multi_wm_sources), inputs.imgs, inputs.segm,
                                     inputs.msgs[:, 1:], boxes, ctx.precision)
            if showcase is None and picture_path is not None and plan.pictures > 0:
                n = plan.pictures  # keep only the images the picture shows
                showcase = (_BatchInputs(inputs.imgs[:n], inputs.segm[:n], inputs.msgs[:n]), fixed)
            bar.update(1)
        bar.close()
        table.all_reduce()
        if multi is not None:
            multi.all_reduce()
        if showcase is not None:
            inputs, fixed = showcase
            save_showcase(picture_path, model, plan.grid, inputs.imgs, inputs.segm, inputs.msgs[:, 0], fixed,
                          plan.pictures, ctx.precision)
    finally:
        model.train(was_training)
    results = table.rows(count_metric="acc")
    multi_rows = multi.rows(count_metric="acc") if multi is not None else []
    return EvalOutcome(results, multi_rows, results[0]["images"] if results else 0)
