"""Build settings, the shard plan, and the on-disk state that makes a build incremental and crash-safe.

Layout of an output directory during a build:
```
OUT/shard-000000.tar            finished shards (renamed into place after fsync)
OUT/shard-000001.tar.tmp        the shard being written (deleted and redone after a crash)
OUT/_build/state.json           settings + source fingerprint (annotations, images) of the build in progress
OUT/_build/shard-000000.json    done-marker of each finished shard: counts, sha256, skipped images
OUT/manifest.json               written last; the build is published when it exists
```
A part build (`num_parts > 1`) uses `state.part-0001-of-0004.json` and `manifest.part-0001-of-0004.json` so that
parts can share a directory.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wam_pipe.data.shards.manifest import FORMAT_VERSION, part_suffix
from wam_pipe.data.shards.prepare import IMAGE_EXTENSIONS, JPEG_SUBSAMPLING
from wam_pipe.core.atomic import atomic_write_bytes
from wam_pipe.data.shards.tar_io import TMP_SUFFIX, shard_name
from wam_pipe.core.errors import UserError
from wam_pipe.data.shards.manifest import manifest_path

STATE_DIR = "_build"


MASK_ORDERS = ("area", "predicted_iou", "stability")


@dataclass
class BuildConfig:
    """Everything `shard build` needs; see `wam_pipe.stages.ShardBuild` for the meaning of each key.

    The source is one of: `images` + `annotations` (COCO), `images` alone (a folder without annotations: every
    image with an empty instance list), or `sa1b` (SA-1B tar files, folders of them or globs; `max_masks` and
    `mask_order` choose which of each image's masks are kept).
    """

    images: Path | None
    annotations: Path | None
    out: Path
    size: int = 256
    samples_per_shard: int = 512
    workers: int | None = None
    image_format: str = "jpeg"
    quality: int = 95
    overwrite: bool = False
    max_skipped_fraction: float = 0.01
    num_parts: int = 1
    part: int = 0
    progress: bool = True
    sa1b: list[str] | None = None
    max_masks: int | None = None
    mask_order: str = "area"
    drop_unannotated: bool = False

    def __post_init__(self) -> None:
        self.images = Path(self.images) if self.images is not None else None
        self.annotations = Path(self.annotations) if self.annotations is not None else None
        self.out = Path(self.out)
        if isinstance(self.sa1b, (str, Path)):
            self.sa1b = [str(self.sa1b)]

    @property
    def kind(self) -> str:
        """"sa1b" (tars), "images" (a folder without annotations) or "coco" (images + instances JSON)."""
        if self.sa1b:
            return "sa1b"
        return "images" if self.annotations is None else "coco"

    @property
    def source_label(self) -> str:
        """What failure messages name as the input: the annotation file, the image folder, or the tars."""
        if self.kind == "sa1b":
            return f"{len(self.sa1b or [])} SA-1B tar argument(s) ({self.sa1b[0] if self.sa1b else ''}...)"
        return str(self.annotations if self.kind == "coco" else self.images)

    def settings(self) -> dict[str, Any]:
        """The settings that determine the bytes of the shards (workers and parts do not)."""
        settings = {
            "format_version": FORMAT_VERSION,
            "size": self.size,
            "samples_per_shard": self.samples_per_shard,
            "image_format": self.image_format,
            "quality": self.quality if self.image_format == "jpeg" else None,
            "jpeg_subsampling": JPEG_SUBSAMPLING if self.image_format == "jpeg" else None,
        }
        if self.kind == "sa1b":  # COCO settings stay as they were: published COCO builds remain up to date
            settings.update(max_masks=self.max_masks, mask_order=self.mask_order)
        if self.drop_unannotated:  # recorded only when set, for the same reason
            settings["drop_unannotated"] = True
        return settings

    @property
    def suffix(self) -> str:
        return part_suffix(self.part, self.num_parts)

    def value_problems(self) -> list[tuple[str, str]]:
        """Every value no build can use, as (key, message), in the order `validate` reports them (paths aside)."""
        checks = [
            (self.size >= 8, "size", f"must be >= 8, got {self.size}"),
            (self.samples_per_shard >= 1, "samples_per_shard", f"must be >= 1, got {self.samples_per_shard}"),
            (self.image_format in IMAGE_EXTENSIONS, "image_format",
             f"must be one of {sorted(IMAGE_EXTENSIONS)}, got {self.image_format!r}"),
            (1 <= self.quality <= 100, "quality", f"must be in 1..100, got {self.quality}"),
            (0.0 <= self.max_skipped_fraction <= 1.0, "max_skipped_fraction",
             f"must be in [0, 1], got {self.max_skipped_fraction}"),
            (self.num_parts >= 1, "num_parts", f"must be >= 1, got {self.num_parts}"),
            (0 <= self.part < max(self.num_parts, 1), "part", f"must be in 0..{self.num_parts - 1}, got {self.part}"),
            (self.workers is None or self.workers >= 0, "workers",
             f"must be >= 0 (unset = all cores), got {self.workers}"),
            (not (self.sa1b and (self.images is not None or self.annotations is not None)), "sa1b",
             "give either sa1b (tar files) or images (+ annotations), not both"),
            (bool(self.sa1b) or self.images is not None, "images",
             "give images (a folder, with or without annotations) or sa1b (tar files)"),
            (self.max_masks is None or self.max_masks >= 0, "max_masks",
             f"must be >= 0 (unset = all), got {self.max_masks}"),
            (self.mask_order in MASK_ORDERS, "mask_order", f"must be one of {list(MASK_ORDERS)}, got "
             f"{self.mask_order!r}"),
            (not self.drop_unannotated or self.kind == "coco", "drop_unannotated",
             "needs a COCO source (images + annotations): it leaves out the images the JSON gives no annotation"),
        ]
        return [(key, message) for ok, key, message in checks if not ok]

    def validate(self) -> None:
        """Raise `UserError` for values no build can use and missing inputs (checked before any work)."""
        problems = self.value_problems()
        if problems:
            key, message = problems[0]
            raise UserError(f"shard build: {key}: {message}")
        if self.kind != "sa1b" and not self.images.is_dir():
            raise UserError(f"{self.images}: image folder not found; pass the folder holding the JSON's file_names"
                            if self.annotations is not None else f"{self.images}: image folder not found")
        if self.annotations is not None and not self.annotations.is_file():
            raise UserError(f"{self.annotations}: annotation file not found; pass the COCO instances JSON")
        check_output_dir(self.out)


def check_output_dir(out: Path) -> None:
    """Refuse an output path that is a file (before any work, so nothing is read or written in vain)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; pass a folder for the shards (--out)")


def create_output_dir(out: Path) -> None:
    """Create the output folder (after the inputs have been read, so a bad input leaves no empty folder behind)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{out}: cannot create the output folder ({err.strerror or err}); pass a folder that can "
                        "be created and written") from None


@dataclass
class PlannedShard:
    """One shard of the plan: its global index and the images it is made from (in plan order).

    `group` is the SA-1B tar the images come from (0 for COCO and folders): shards never span two groups, and a
    split SA-1B build gives each part whole tars (`group % num_parts`).
    """

    index: int
    images: list[Any]
    group: int = 0

    @property
    def name(self) -> str:
        return shard_name(self.index)


def plan_shards(images: list[Any], config: BuildConfig) -> list[PlannedShard]:
    """Cut the image list into shards of `samples_per_shard` (a new shard at each new `group`, the SA-1B tar);
    keep this part's (`index % num_parts`, or `group % num_parts` for SA-1B so that each part reads whole tars).

    The plan does not depend on the part count, so the parts of a split build hold exactly the shards of a whole build.
    """
    per = config.samples_per_shard
    runs: list[list[Any]] = []
    for record in images:
        group = getattr(record, "group", 0)
        if not runs or len(runs[-1]) == per or getattr(runs[-1][0], "group", 0) != group:
            runs.append([])
        runs[-1].append(record)
    shards = [PlannedShard(i, run, getattr(run[0], "group", 0)) for i, run in enumerate(runs)]
    by_group = config.kind == "sa1b"
    return [s for s in shards if (s.group if by_group else s.index) % config.num_parts == config.part]


class BuildState:
    """The `_build/` directory of one build (or one part): its fingerprint file and the shard done-markers."""

    def __init__(self, config: BuildConfig):
        self.config = config
        self.directory = config.out / STATE_DIR
        self.state_file = self.directory / f"state{config.suffix}.json"

    def marker_path(self, shard: PlannedShard) -> Path:
        return self.directory / f"{Path(shard.name).stem}.json"

    def read_fingerprint(self) -> dict[str, Any] | None:
        if not self.state_file.is_file():
            return None
        try:
            return json.loads(self.state_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}  # unreadable: treated as "different build"

    def write_fingerprint(self, fingerprint: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.state_file, json.dumps(fingerprint, sort_keys=True).encode())

    def read_marker(self, shard: PlannedShard) -> dict[str, Any] | None:
        """The marker of a finished shard, or None when the shard must be (re)built."""
        marker_path, tar_path = self.marker_path(shard), self.config.out / shard.name
        if not marker_path.is_file() or not tar_path.is_file():
            return None
        try:
            marker = json.loads(marker_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return marker if tar_path.stat().st_size == marker.get("bytes") else None

    def write_marker(self, shard: PlannedShard, marker: dict[str, Any]) -> None:
        atomic_write_bytes(self.marker_path(shard), json.dumps(marker, sort_keys=True).encode())

    def remove_stale_temp_files(self, shards: list[PlannedShard]) -> None:
        for shard in shards:
            (self.config.out / (shard.name + TMP_SUFFIX)).unlink(missing_ok=True)

    def discard(self, shards: list[PlannedShard], remove_tars: bool) -> None:
        """Forget this build's state (after publishing, or after a failed build when `remove_tars`)."""
        for shard in shards:
            self.marker_path(shard).unlink(missing_ok=True)
            if remove_tars:
                (self.config.out / shard.name).unlink(missing_ok=True)
        self.state_file.unlink(missing_ok=True)
        if self.directory.is_dir() and not any(self.directory.iterdir()):
            self.directory.rmdir()


def clear_output(out: Path, whole_build: bool, shards: list[PlannedShard], state: BuildState) -> None:
    """`--overwrite`: delete what a previous build left (only files wam-pipe writes; never the folder itself)."""
    if whole_build:
        for path in list(out.glob("shard-*.tar")) + list(out.glob("shard-*.tar" + TMP_SUFFIX)):
            path.unlink()
        for path in out.glob("manifest*.json"):
            path.unlink()
        if (out / STATE_DIR).is_dir():
            shutil.rmtree(out / STATE_DIR)
        return

    manifest_path(out, state.config.part, state.config.num_parts).unlink(missing_ok=True)
    state.remove_stale_temp_files(shards)
    state.discard(shards, remove_tars=True)
