"""The `eval` stage: the robustness grid of masks x augmentations, multi-watermark evaluation, metrics.json,
history.jsonl, pictures and a printed summary. Runs inside training and alone from a checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

from wam_pipe.core import run_layout as layout
from wam_pipe.core.errors import UserError
from wam_pipe.core.run_layout import eval_dir, last_checkpoint
from wam_pipe.core.signature import signature_of
from wam_pipe.eval.grid import DEFAULT_MASKS, Grid, build_augmentations, build_settings, check_masks
from wam_pipe.eval.multi import MULTI_SOURCES
from wam_pipe.core.context import RunContext
from wam_pipe.core import distributed
from wam_pipe.eval.engine import EvalPlan, evaluate_batches
from wam_pipe.eval.outputs import write_metrics
from wam_pipe.eval.pictures import read_jsonl, save_curves_plot, save_robustness_plot
from wam_pipe.eval.summary import grid_lines, headline, multi_lines, summarize
from wam_pipe.stages.load import Load


class Eval:
    """Evaluate a watermarking model on a grid of masks x augmentation settings (`wam_pipe.stages.Eval`).

    Per image: one message (from `seed` and the image's key, so every evaluation of the same weights gives the same
    numbers, inside training or alone). Per mask: the watermark is spliced into the image by the mask; per setting,
    image and mask are augmented alike and the extractor runs. Each rank evaluates its share of `data` (each sample
    exactly once across ranks) and the sums are all-reduced; rank 0 writes `<run>/eval/metrics.json`, appends to
    `<run>/eval/history.jsonl`, draws `<run>/eval/grid.png`, `<run>/eval/robustness.png` and `<run>/curves.png`, and
    prints a summary. See docs/eval.md for the metrics.json contract.

    Args:
        data: a `wam_pipe.stages.Load` node with `shuffle: false, drop_last: false, random_subset: 0` (each sample
            exactly once, the same masks whatever the number of ranks and workers).
        masks: mask names: full, box, box_inverted, irregular, irregular_inverted, segm (the image's COCO instances).
            Default: all six, as the reference.
        augs: augmentation name -> list of strengths (`null`: the reference strengths of that augmentation).
            Default null: the reference grid (identity, hflip, rotate, resize, crop, perspective, crop_resize_pad,
            jpeg, gaussian_blur, median_filter, brightness, contrast, saturation, hue: 35 settings).
        aug_args: augmentation name -> constructor arguments for the grid's copy of that augmentation, e.g.
            `{crop_resize_pad: {eval_setting: reference}, median_filter: {algorithm: reference}}` for the
            reference's evaluation (docs/models.md, "Differences from the reference"). Default {}: every
            augmentation with its defaults.
        max_images: evaluate at most this many images (across ranks), the first of the loader's order. Default 1000.
        max_images_per_rank: read `max_images` per rank, as the reference's `nb_images_eval` (the cap is then
            `max_images` x world size: with 8 GPUs and 1000, the whole 5k COCO val set). Default false (a total,
            the same images whatever the number of GPUs).
        checkpoint: weights for an evaluation alone (`wam-pipe run pipelines/eval.yaml stages.eval.checkpoint=P`).
            Default null: `<run>/checkpoints/last.pt`.
        multi_wm: also evaluate k = 1..`multi_wm_max` watermarks in one image, with and without roll. Default false.
        multi_wm_max: largest number of watermarks per image. Default 5.
        multi_wm_sources: masks of the multiple watermarks: "boxes" (non-overlapping boxes) and/or "segm" (the
            image's first instances; needs `data.mask_mode: instances`). Default ["boxes", "segm"].
        pictures: images shown in grid.png (0: no grid.png). Default 4.
        seed: seed of the messages and of the multi-watermark boxes. Default 0.
        batch_size: if set, replaces `data.batch_size` for evaluation. Default null.
        allow_targets: extra import patterns trusted when rebuilding the model from a checkpoint's config (beyond
            the default allowlist, see `wam_pipe.core.targets`). Default [].
    """

    def __init__(self, data: Any, masks: list[str] = DEFAULT_MASKS,
                 augs: Optional[dict[str, Optional[list[float]]]] = None,
                 max_images: Optional[int] = 1000, checkpoint: Optional[str] = None, multi_wm: bool = False,
                 multi_wm_max: int = 5, multi_wm_sources: list[str] = MULTI_SOURCES, pictures: int = 4,
                 seed: int = 0, batch_size: Optional[int] = None, allow_targets: list[str] = (),
                 max_images_per_rank: bool = False, aug_args: Optional[dict[str, dict[str, Any]]] = None):
        self.data = data
        self.masks = list(masks)
        self.augs = dict(augs) if augs is not None else None
        self.aug_args = dict(aug_args or {})
        self.max_images = max_images
        self.max_images_per_rank = max_images_per_rank
        self.checkpoint = checkpoint
        self.multi_wm = multi_wm
        self.multi_wm_max = multi_wm_max
        self.multi_wm_sources = list(multi_wm_sources)
        self.pictures = pictures
        self.seed = seed
        self.batch_size = batch_size
        self.allow_targets = list(allow_targets)
        self._plan: Any = None

    @classmethod
    def check_config(cls, node: dict) -> list[tuple[str, str]]:
        """`wam-pipe validate`: grid names, counts, and a data node that reads each sample exactly once."""
        problems: list[tuple[str, str]] = []
        settings: list = []
        for key, check in (("masks", lambda: check_masks(node.get("masks", DEFAULT_MASKS))),
                           ("augs", lambda: settings.extend(build_settings(node.get("augs")))),
                           # the augmentations' own arguments, once the grid's names are known to be right
                           ("aug_args", lambda: settings and build_augmentations(settings, node.get("aug_args")))):
            try:
                check()
            except UserError as err:  # "eval.<key>: message" -> (<key>, message)
                where, _, message = str(err).partition(": ")
                problems.append((where.removeprefix("eval.") or key, message))
            except (TypeError, ValueError):
                pass  # wrong types are reported by the signature check
        for key, least in (("multi_wm_max", 1), ("pictures", 0), ("max_images", 1), ("batch_size", 1)):
            value = node.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value < least:
                problems.append((key, f"must be >= {least}, got {value}"))
        data = node.get("data")
        if not (isinstance(data, dict) and "_target_" in data):  # typed Any for hydra: check the shape here
            shown = repr(data) if len(repr(data)) <= 60 else repr(data)[:57] + "..."
            problems.append(("data", f"expected a loader node such as `{{_target_: wam_pipe.stages.Load, shards: "
                                     f"...}}`, got {shown}"))
        problems += _data_problems(node)
        return problems

    # --- set-up -------------------------------------------------------------------------------------------------
    def setup(self, ctx: RunContext) -> None:
        """Check the grid, cap the loader at `max_images`, and set the loader up (once)."""
        if self._plan is not None:
            return
        sources = tuple(self.multi_wm_sources)
        for source in sources:
            if source not in MULTI_SOURCES:
                raise UserError(f"eval.multi_wm_sources: unknown source {source!r}; use {', '.join(MULTI_SOURCES)}")
        if self.multi_wm and (self.multi_wm_max < 1 or not sources):
            raise UserError("eval.multi_wm: needs multi_wm_max >= 1 and at least one of multi_wm_sources")
        grid = Grid(check_masks(self.masks), build_settings(self.augs), self.aug_args)
        if self.max_images is not None:
            cap = self.max_images * (ctx.world_size if self.max_images_per_rank else 1)
            current = getattr(self.data, "max_samples", None)
            self.data.max_samples = cap if current is None else min(current, cap)
        if self.batch_size is not None:
            self.data.batch_size = self.batch_size
        self.data.setup(ctx)
        self._plan = EvalPlan(grid=grid, seed=self.seed, multi_wm=self.multi_wm, multi_wm_max=self.multi_wm_max,
                              multi_wm_sources=sources, pictures=self.pictures)

    # --- evaluation ---------------------------------------------------------------------------------------------
    def evaluate(self, ctx: RunContext, watermarker: Any, epoch: int, step: int,
                 checkpoint: str | None = None) -> dict[str, Any]:
        """Evaluate `watermarker` on every rank; rank 0 writes the outputs. Returns the summary (on every rank)."""
        self.setup(ctx)
        started = time.perf_counter()
        pictures = eval_dir(ctx.run_dir) / layout.GRID if ctx.is_main else None
        outcome = evaluate_batches(ctx, watermarker, self.data.epoch(0), self._plan, pictures,
                                   total_batches=getattr(self.data, "batches_per_epoch", None))
        metrics = self._metrics(watermarker, outcome, epoch, step, checkpoint)
        if ctx.is_main:
            self._write(ctx, metrics, time.perf_counter() - started)
        distributed.barrier(ctx)
        return metrics["summary"]

    def checkpoint_path(self, ctx: RunContext) -> Path:
        """The checkpoint an evaluation alone reads: `checkpoint`, default `<run>/checkpoints/last.pt`."""
        path = Path(self.checkpoint) if self.checkpoint else last_checkpoint(ctx.run_dir)
        if not path.is_file():
            if self.checkpoint:
                raise UserError(f"eval.checkpoint: {path}: no such checkpoint; give a .pt file written by training")
            raise UserError(f"eval.checkpoint: not set and {path} does not exist; set stages.eval.checkpoint=PATH")
        return path

    def evaluate_checkpoint(self, ctx: RunContext, loaded: Any) -> None:
        """Evaluation alone: evaluate the model the runner rebuilt from `checkpoint_path(ctx)`.

        `loaded` is a `wam_pipe.config.checkpoint_model.LoadedModel` (model, path, epoch, step); rebuilding a model
        from a checkpoint validates its config, which is the config layer's job, so the runner does it.
        """
        path = loaded.path
        ctx.log(f"eval: {path} (epoch {loaded.epoch}, step {loaded.step}, {loaded.nbits} bits, "
                f"img_size {loaded.img_size})")
        # A checkpoint stores the next epoch to run; its weights are those evaluated at the end of epoch - 1.
        epoch = loaded.epoch - 1 if loaded.epoch is not None else 0
        self.evaluate(ctx, loaded.model, epoch=epoch, step=loaded.step or 0, checkpoint=str(path))

    # --- outputs ------------------------------------------------------------------------------------------------
    def _metrics(self, model: Any, outcome: Any, epoch: int, step: int, checkpoint: str | None) -> dict[str, Any]:
        return {
            "format": 1, "epoch": int(epoch), "step": int(step), "time": round(time.time(), 3),
            "checkpoint": checkpoint, "images": outcome.images, "nbits": int(model.nbits),
            "img_size": int(model.img_size), "seed": self.seed, "masks": self._plan.grid.masks,
            "settings": [s.label for s in self._plan.grid.settings],
            "summary": summarize(outcome.results, outcome.multi_wm),
            "results": outcome.results, "multi_wm": outcome.multi_wm,
        }

    def _write(self, ctx: RunContext, metrics: dict[str, Any], seconds: float) -> None:
        run_dir = Path(ctx.run_dir)
        path = write_metrics(run_dir, metrics)
        save_robustness_plot(eval_dir(run_dir) / layout.ROBUSTNESS, metrics["results"], metrics["settings"],
                             metrics["masks"])
        save_curves_plot(run_dir / layout.CURVES, read_jsonl(layout.log_path(run_dir)),
                         read_jsonl(layout.history_path(run_dir)))
        ctx.tracker.log_scalars("eval", metrics["step"], metrics["summary"])
        ctx.tracker.log_images("eval", metrics["step"], {"grid": eval_dir(run_dir) / layout.GRID,
                                                         "robustness": eval_dir(run_dir) / layout.ROBUSTNESS})
        for line in [f"[eval] {headline(metrics)} | {seconds:.1f} s", *grid_lines(metrics), *multi_lines(metrics)]:
            ctx.log(line)
        ctx.log(f"[eval] wrote {path} and pictures in {eval_dir(run_dir)}")


def _data_problems(node: dict) -> list[tuple[str, str]]:
    """The eval loader must read every sample exactly once: no dropped last batch, no resampling."""
    data = node.get("data")
    if not isinstance(data, dict) or not str(data.get("_target_", "")).endswith("stages.Load"):
        return []
    def value(key: str) -> Any:  # as written, else the Load default (one copy of the defaults: Load's signature)
        return data[key] if key in data else signature_of(Load).params[key].default

    problems = []
    if value("drop_last") is not False:
        problems.append(("data.drop_last", "must be false for evaluation (a dropped last batch skips images)"))
    if value("random_subset") != 0:
        problems.append(("data.random_subset", "must be 0 for evaluation (random instance subsets would change the "
                                               "segm masks with the number of ranks and workers)"))
    if value("resampled"):
        problems.append(("data.resampled", "must be false for evaluation (resampling repeats and misses images)"))
    sources = node.get("multi_wm_sources", MULTI_SOURCES)
    if node.get("multi_wm") and isinstance(sources, list) and "segm" in sources \
            and value("mask_mode") != "instances":
        problems.append(("multi_wm_sources", "'segm' needs separate instance masks: set data.mask_mode: instances "
                                             "(or drop 'segm')"))
    return problems
