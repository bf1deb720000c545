"""The `shard-build` stage: the same build as `wam-pipe shard build`, run at the start of a pipeline."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from wam_pipe.core.errors import UserError
from wam_pipe.core.context import RunContext
from wam_pipe.core.signature import instance_for_check
from wam_pipe.data.location import is_url
from wam_pipe.data.shards.build import build_shards
from wam_pipe.data.shards.build_state import BuildConfig
from wam_pipe.data.shards.manifest import MANIFEST_NAME
from wam_pipe.data.shards.manifest_summary import summary_lines
from wam_pipe.data.synth import write_synthetic_coco

if TYPE_CHECKING:
    from wam_pipe.data.shards.build_state import BuildConfig


class ShardBuild:
    """Pack images + instance masks into WebDataset shards; a no-op when `out` already matches.

    Sources: `images` + `annotations` (COCO), `images` alone (a folder without annotations: every image, recursively,
    with no instances; pipelines then use box/irregular/full masks), or `sa1b` (SA-1B tar files, folders or globs).

    Rank 0 builds; the other ranks wait until `out/manifest.json` exists (the runner adds a barrier after `run`).
    `out` must therefore be visible to every rank (shared or per-node storage prepared the same way).

    Args:
        images: folder of the images the JSON lists (or, without `annotations`, of the images to pack). Default None.
        annotations: COCO instances JSON. Default None.
        out: output folder for `shard-*.tar` and `manifest.json` (required).
        sa1b: SA-1B tar files, folders of them or glob patterns (instead of `images`). Default None.
        max_masks: SA-1B: keep at most this many masks per image (None = all). Default None.
        mask_order: SA-1B: which masks `max_masks` keeps first: "area", "predicted_iou" or "stability" (largest
            first). Default "area".
        drop_unannotated: COCO: leave out the images the JSON gives no annotation, as the reference's loader does
            (`shard build --drop-unannotated`). Default False (kept, with an empty instance list).
        size: stored side in pixels (short side resized, then center-cropped). Default 256.
        samples_per_shard: samples per shard. Default 512.
        workers: build processes; None = all cores. Default None.
        image_format: "jpeg" or "png". Default "jpeg".
        quality: JPEG quality. Default 95.
        overwrite: rebuild from scratch, even when the output is up to date (without it, an output built from
            other inputs or settings is an error). Every run of a pipeline with `overwrite: true` rebuilds.
            Default False.
        max_skipped_fraction: fail, publishing nothing, when more images than this are skipped. Default 0.01.
        synthesize: if > 0, first write a synthetic COCO dataset of this many images to `images` / `annotations`
            (a no-op when it is already there with the same count and seed). 0 = off. Default 0.
        synthesize_seed: seed of the synthetic dataset. Default 0.
        wait_timeout_s: how long ranks other than 0 wait for the manifest. Default 86400.
    """

    def __init__(self, images: str | None = None, annotations: str | None = None, out: str | None = None,
                 size: int = 256, samples_per_shard: int = 512, workers: int | None = None, image_format: str = "jpeg",
                 quality: int = 95, overwrite: bool = False, max_skipped_fraction: float = 0.01, synthesize: int = 0,
                 synthesize_seed: int = 0, wait_timeout_s: float = 86400.0, sa1b: list[str] | None = None,
                 max_masks: int | None = None, mask_order: str = "area", drop_unannotated: bool = False):
        self.images, self.annotations, self.out = images, annotations, out
        self.sa1b, self.max_masks, self.mask_order = sa1b, max_masks, mask_order
        self.drop_unannotated = drop_unannotated
        self.size, self.samples_per_shard, self.workers = size, samples_per_shard, workers
        self.image_format, self.quality, self.overwrite = image_format, quality, overwrite
        self.max_skipped_fraction = max_skipped_fraction
        self.synthesize, self.synthesize_seed = synthesize, synthesize_seed
        self.wait_timeout_s = wait_timeout_s

    @classmethod
    def check_config(cls, node: dict) -> list[tuple[str, str]]:
        """`wam-pipe validate`: every value the build would refuse, as (key, message), before any work is done."""
        stage = instance_for_check(cls, node)
        if stage is None:  # wrong names or types: the signature check reports them
            return []
        own = [
            (stage.synthesize >= 0, "synthesize", f"must be >= 0 (0 = off), got {stage.synthesize}"),
            (stage.wait_timeout_s > 0, "wait_timeout_s", f"must be > 0, got {stage.wait_timeout_s}"),
            (bool(stage.out), "out", "required: the output folder for the shards"),
            (not stage.synthesize or (stage.images and stage.annotations), "synthesize",
             "needs images and annotations (it writes a synthetic COCO set there)"),
            # A URL would silently become a local path (`s3://b/x` -> `s3:/b/x`); the CLI uploads, the stage does not.
            ("://" not in str(stage.out) and not is_url(str(stage.out)), "out",
             f"{stage.out!r}: the shard-build stage writes a local folder (a path, not a URL); build into a bucket with `wam-pipe shard "
             "build --out URL` and point stages.load.shards at the URL"),
        ]
        return stage._config().value_problems() + [(key, message) for ok, key, message in own if not ok]

    def run(self, ctx: RunContext) -> None:
        """Build on rank 0 (or confirm it is up to date); wait for the manifest elsewhere."""
        if self.synthesize < 0:
            raise UserError(f"shard-build.synthesize: must be >= 0, got {self.synthesize}")
        if not self.out:
            raise UserError("shard-build.out: required: the output folder for the shards")
        if ctx.rank == 0:
            self._build(ctx)
        else:
            self._wait_for_manifest()

    def _build(self, ctx: RunContext) -> None:
        if self.synthesize > 0:
            if write_synthetic_coco(self.images, self.annotations, self.synthesize, seed=self.synthesize_seed,
                                    workers=self.workers):
                ctx.log(f"shard-build: wrote a synthetic COCO dataset of {self.synthesize} images to {self.images}")
        result = build_shards(self._config(), log=ctx.log)
        if result.noop:
            ctx.log(f"shard-build: {self.out} is up to date")
        else:
            ctx.log(f"shard-build: built {result.built_shards} shards ({result.processed_images} images) in "
                    f"{result.seconds:.1f} s, reused {result.reused_shards}")
        for line in summary_lines(result.manifest, f"shard-build: {result.manifest_path}"):
            ctx.log(line)

    def _config(self) -> BuildConfig:
        """The build this stage runs (no I/O: `BuildConfig.validate` checks the paths when the build starts)."""
        return BuildConfig(
            images=self.images, annotations=self.annotations, out=Path(self.out or ""), size=self.size,
            sa1b=list(self.sa1b) if self.sa1b else None, max_masks=self.max_masks, mask_order=self.mask_order,
            drop_unannotated=self.drop_unannotated, samples_per_shard=self.samples_per_shard, workers=self.workers, image_format=self.image_format,
            quality=self.quality, overwrite=self.overwrite, max_skipped_fraction=self.max_skipped_fraction,
        )

    def _wait_for_manifest(self) -> None:
        deadline = time.monotonic() + self.wait_timeout_s
        manifest = Path(self.out) / MANIFEST_NAME
        while not manifest.is_file():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UserError(f"{manifest}: not written by rank 0 within {self.wait_timeout_s:.0f} s; is `out` on "
                                "storage every rank can see?")
            time.sleep(min(0.5, remaining))
