"""`shard build`: COCO images + instances JSON -> WebDataset shards + manifest (one implementation for the CLI and
the `ShardBuild` stage).

Order of work: fingerprint the annotation file (sha256); if a manifest with the same settings and source exists,
stop (a no-op in seconds); parse the JSON once; plan shards; refuse to mix with another build's files unless
`overwrite`; then process the images of unfinished shards in a process pool (ordered results, so the bytes do not
depend on the worker count), write each shard atomically with a done-marker, and publish `manifest.json` last.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from wam_pipe.data import manifest as manifest_io
from wam_pipe.data.build_state import BuildConfig, BuildState, PlannedShard, clear_output, plan_shards
from wam_pipe.data.coco_index import CocoIndex, ImageRecord, load_coco_index, sha256_file
from wam_pipe.data.prepare import SkipImage, encode_sample, prepare_sample
from wam_pipe.data.tar_io import ShardWriter
from wam_pipe.errors import RunFailure, UserError

# Test hook: SIGKILL this process while writing the shard after the first N finished ones (crash-safety tests).
KILL_HOOK_ENV = "WAM_PIPE_TEST_KILL_AFTER_SHARDS"
IMAGE_FILE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclass
class BuildResult:
    """The outcome of a build: the published manifest and what this run did."""

    manifest_path: Path
    manifest: dict[str, Any]
    noop: bool
    built_shards: int = 0
    reused_shards: int = 0
    processed_images: int = 0
    seconds: float = 0.0
    messages: list[str] = field(default_factory=list)


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def build_shards(config: BuildConfig, log: Callable[[str], None] = print) -> BuildResult:
    """Build (or resume, or confirm) the shards described by `config`; returns the published manifest.

    Raises:
        UserError: bad settings, missing inputs, malformed JSON, or an output holding a different build.
        RunFailure: more than `max_skipped_fraction` of the images were skipped (nothing is published).
    """
    config.validate()
    started = time.perf_counter()
    source_sha = sha256_file(config.annotations)
    config.out.mkdir(parents=True, exist_ok=True)
    manifest_file = manifest_io.manifest_path(config.out, config.part, config.num_parts)
    existing = _existing_manifest(manifest_file, config)
    if existing is not None and _is_up_to_date(existing, config, source_sha):
        return BuildResult(manifest_file, existing, noop=True, seconds=time.perf_counter() - started)
    index = load_coco_index(config.annotations)
    source = _source_record(config, index, source_sha)
    shards = plan_shards(index.images, config)
    state = BuildState(config)
    _refuse_foreign_output(config, state, shards, existing, source)
    if config.overwrite:
        clear_output(config.out, config.num_parts == 1, shards, state)
    state.write_fingerprint({"settings": config.settings(), "source": source})
    state.remove_stale_temp_files(shards)
    built, processed = _build_missing(config, state, shards)
    markers = [state.read_marker(s) for s in shards]
    manifest = _assemble_manifest(config, index, source, shards, markers)
    _enforce_skip_limit(config, state, shards, manifest)
    manifest_io.write_manifest(manifest_file, manifest)
    state.discard(shards, remove_tars=False)
    seconds = time.perf_counter() - started
    return BuildResult(manifest_file, manifest, False, built, len(shards) - built, processed, seconds)


def _existing_manifest(path: Path, config: BuildConfig) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return manifest_io.read_manifest(path)
    except UserError:
        if config.overwrite:
            return None
        raise


def _is_up_to_date(manifest: dict[str, Any], config: BuildConfig, source_sha: str) -> bool:
    if manifest.get("settings") != config.settings():
        return False
    if manifest.get("source", {}).get("annotations_sha256") != source_sha:
        return False
    # Cheap completeness check (sizes only); `shard verify` is the thorough one.
    return all(
        (config.out / s["name"]).is_file() and (config.out / s["name"]).stat().st_size == s["bytes"]
        for s in manifest.get("shards", [])
    )


def _source_record(config: BuildConfig, index: CocoIndex, source_sha: str) -> dict[str, Any]:
    return {
        "annotations_file": config.annotations.name,
        "annotations_sha256": source_sha,
        "image_count": len(index.images),
        "annotation_count": index.annotation_count,
    }


def _refuse_foreign_output(
    config: BuildConfig, state: BuildState, shards: list[PlannedShard], existing: dict | None, source: dict
) -> None:
    """Refuse (unless `overwrite`) to write over a published or in-progress build made differently."""
    if config.overwrite:
        return
    where = f"{config.out}: "
    fix = "; pass --overwrite (overwrite: true) to replace it, or choose another output folder"
    if existing is not None:
        old_sha = existing.get("source", {}).get("annotations_sha256")
        diff = manifest_io.describe_difference(
            {**existing.get("settings", {}), "annotations_sha256": old_sha},
            {**config.settings(), "annotations_sha256": source["annotations_sha256"]},
        )
        raise UserError(where + f"holds shards built differently ({diff or 'incomplete shard files'})" + fix)
    fingerprint = state.read_fingerprint()
    if fingerprint is not None and fingerprint != {"settings": config.settings(), "source": source}:
        raise UserError(where + "holds an unfinished build with other settings or another annotation file" + fix)
    if fingerprint is None and any((config.out / s.name).exists() for s in shards):
        raise UserError(where + "holds shard files of an unknown build (no manifest, no build state)" + fix)


def _build_missing(config: BuildConfig, state: BuildState, shards: list[PlannedShard]) -> tuple[int, int]:
    """Write every planned shard that has no valid done-marker; returns (shards built, images processed)."""
    todo = [s for s in shards if state.read_marker(s) is None]
    if not todo:
        return 0, 0
    kill_after = int(os.environ.get(KILL_HOOK_ENV, "-1"))
    total_images = sum(len(s.images) for s in todo)
    with _progress(config, total_images) as bar, _results(config, todo) as results:
        for built, shard in enumerate(todo):
            marker = _write_shard(config, shard, results, bar, kill_now=built == kill_after)
            state.write_marker(shard, marker)
    return len(todo), total_images


def _write_shard(config: BuildConfig, shard: PlannedShard, results: Iterator, bar: Any, kill_now: bool) -> dict:
    skipped, instances, empty, categories = [], 0, 0, Counter()
    with ShardWriter(config.out / shard.name) as writer:
        for record in shard.images:
            outcome = next(results)
            bar.update(1)
            if isinstance(outcome, str):
                skipped.append({"image_id": record.id, "file_name": record.file_name, "reason": outcome})
                continue
            stats = outcome.pop("__stats__")
            writer.write(outcome)
            instances += stats["instances"]
            empty += stats["instances"] == 0
            categories.update({str(k): v for k, v in stats["categories"].items()})
            if kill_now:
                writer.flush()
                os.kill(os.getpid(), signal.SIGKILL)
    info = writer.info
    assert info is not None
    return {**info.as_dict(), "skipped": skipped, "instances": instances,
            "images_without_annotations": empty, "category_counts": dict(sorted(categories.items()))}


class _progress:
    """A tqdm bar (images/s and ETA) on stderr; silent when stderr is not a terminal or progress is off."""

    def __init__(self, config: BuildConfig, total: int):
        from tqdm import tqdm

        enabled = config.progress and sys.stderr.isatty()
        self.bar = tqdm(total=total, unit="img", desc="shard build", file=sys.stderr, disable=not enabled,
                        smoothing=0.1, dynamic_ncols=True)

    def __enter__(self) -> Any:
        return self.bar

    def __exit__(self, *exc: Any) -> None:
        self.bar.close()


class _results:
    """Ordered per-image results for the images of `shards`, from a process pool or in-process.

    Workers are forked where the platform can (Linux): they only use PIL, numpy and pycocotools, never CUDA, so a
    parent that initialised CUDA is safe, and unlike spawn a script without a `__main__` guard still works.
    """

    def __init__(self, config: BuildConfig, shards: list[PlannedShard]):
        self.config = config
        self.records = [record for shard in shards for record in shard.images]
        self.pool = None

    def __enter__(self) -> Iterator:
        workers = self.config.workers if self.config.workers is not None else default_workers()
        args = (str(self.config.images), self.config.size, self.config.image_format, self.config.quality)
        if workers <= 1 or len(self.records) <= 1:
            _init_worker(*args)
            return map(_process_image, self.records)
        context = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        self.pool = multiprocessing.get_context(context).Pool(workers, initializer=_init_worker, initargs=args)
        return self.pool.imap(_process_image, self.records, chunksize=4)

    def __exit__(self, *exc: Any) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


_WORKER_ARGS: dict[str, Any] = {}


def _init_worker(images: str, size: int, image_format: str, quality: int) -> None:
    _WORKER_ARGS.update(images=Path(images), size=size, image_format=image_format, quality=quality)


def _process_image(record: ImageRecord) -> dict[str, Any] | str:
    """One image -> its tar members (+ `__stats__`), or the reason it was skipped."""
    try:
        sample = prepare_sample(_WORKER_ARGS["images"], record, _WORKER_ARGS["size"])
    except SkipImage as skip:
        return skip.reason
    encoded = encode_sample(sample, _WORKER_ARGS["image_format"], _WORKER_ARGS["quality"])
    categories = Counter(ann["category_id"] for ann in sample.annotations)
    encoded["__stats__"] = {"instances": len(sample.annotations), "categories": dict(categories)}
    return encoded


def _assemble_manifest(
    config: BuildConfig, index: CocoIndex, source: dict, shards: list[PlannedShard], markers: list[dict | None]
) -> dict[str, Any]:
    from wam_pipe.data.manifest_summary import assemble_manifest, count_files_not_in_json

    if any(m is None for m in markers):  # cannot happen unless files vanish mid-build
        raise RunFailure(f"{config.out}: a shard finished during this build is missing; rerun the build")
    extra_files = count_files_not_in_json(config.images, index, IMAGE_FILE_SUFFIXES)
    part = {"index": config.part, "count": config.num_parts} if config.num_parts > 1 else None
    return assemble_manifest(config.settings(), source, part, markers, index, extra_files)


def _enforce_skip_limit(config: BuildConfig, state: BuildState, shards: list[PlannedShard], manifest: dict) -> None:
    total = sum(len(s.images) for s in shards)
    skipped = len(manifest["skipped"])
    if total and skipped / total > config.max_skipped_fraction:
        reasons = Counter(entry["reason"].split(" (")[0] for entry in manifest["skipped"])
        state.discard(shards, remove_tars=True)
        detail = "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common(3))
        raise RunFailure(
            f"{config.annotations}: skipped {skipped} of {total} images ({skipped / total:.1%} > "
            f"max_skipped_fraction {config.max_skipped_fraction:.1%}): {detail}; nothing was published; fix the "
            f"images or raise --max-skipped-fraction"
        )
