"""`shard build`: a source -> WebDataset shards + manifest (one implementation for the CLI and the `ShardBuild`
stage). Sources (`sources.py`): COCO images + instances JSON, an image folder without annotations, or SA-1B tars;
they share the plan, the build state, the markers, the manifest, resume/repair and `--num-parts`.

Order of work: fingerprint the annotation file (sha256; COCO only). If a manifest exists (and not `overwrite`), check it
(`published.py`): another build is refused, an up-to-date one is a no-op in seconds (the JSON is not parsed), and
missing or damaged shards of a matching one are rebuilt alone. Otherwise parse the JSON once, create the output
folder, fingerprint the images, plan shards, refuse to mix with another build's files unless `overwrite` (which
always rebuilds), then process the images of unfinished shards in a process pool (ordered results, so the bytes do
not depend on the worker count), write each shard atomically with a done-marker, and publish `manifest.json` last.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from wam_pipe.core.worker_pool import process_context, reset_signal_handlers
from wam_pipe.data.shards import manifest as manifest_io
from wam_pipe.data.shards.build_state import (
    BuildConfig, BuildState, PlannedShard, clear_output, create_output_dir, plan_shards,
)
from wam_pipe.data.coco_index import CocoIndex, ImageRecord
from wam_pipe.data.sa1b_index import TarIndex
from wam_pipe.data.shards.fingerprint import ImagesFingerprint
from wam_pipe.data.shards.prepare import SkipImage, prepare_sample
from wam_pipe.data.shards.published import REFUSAL_FIX, PublishedBuild, check_published
from wam_pipe.data.shards.sources import annotations_sha256, fingerprint_source, load_index, source_record
from wam_pipe.data.shards.tar_build import write_tar_shards
from wam_pipe.data.shards.write_shard import sample_outcome, write_shard
from wam_pipe.core.errors import RunFailure, UserError
from wam_pipe.core.run_lock import DirLock
from wam_pipe.data.shards.manifest_summary import assemble_manifest, skip_limit_exceeded

# Test hook: SIGKILL this process while writing the shard after the first N finished ones (crash-safety tests).
KILL_HOOK_ENV = "WAM_PIPE_TEST_KILL_AFTER_SHARDS"


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


def build_shards(config: BuildConfig, log: Callable[[str], None] = print,
                 on_shard: Callable[[Path], None] | None = None) -> BuildResult:
    """Build (or resume, repair, or confirm) the shards described by `config`; returns the published manifest.

    `on_shard(path)` is called with each shard this run finishes (renamed to its final name), e.g. to upload it
    while the next one is built (`upload.py`).

    Raises:
        UserError: bad settings, missing inputs, malformed JSON, or an output holding a different build (other
            settings, annotation file or images) without `overwrite`.
        RunFailure: more than `max_skipped_fraction` of the images were skipped (nothing new is published).
    """
    config.validate()
    # One writer per output (per part): a second build into it gets "in use by PID on HOST". The lock file lies
    # beside the output; when even its parent is missing, nothing can be there yet and a failed build must leave
    # nothing behind, so the lock is taken once the output folder has been created.
    lock = DirLock(config.out, "--out", manifest_io.part_suffix(config.part, config.num_parts),
                   unwritable="cannot create the output folder")
    with contextlib.ExitStack() as stack:
        if lock.path.parent.is_dir():
            stack.enter_context(lock)
            lock = None
        return _build_locked(config, log, stack, lock, on_shard)


def _build_locked(config: BuildConfig, log: Callable[[str], None], stack: contextlib.ExitStack,
                  lock: DirLock | None, on_shard: Callable[[Path], None] | None) -> BuildResult:
    started = time.perf_counter()
    source_sha = annotations_sha256(config)
    manifest_file = manifest_io.manifest_path(config.out, config.part, config.num_parts)
    index, shards, fingerprint, rebuild_all = None, None, None, config.overwrite
    if not config.overwrite and manifest_file.is_file():
        published = check_published(config, manifest_io.read_manifest(manifest_file), source_sha)
        if not published.damaged:
            return _confirm_up_to_date(manifest_file, published, started)
        index = published.index or load_index(config)
        shards = plan_shards(index.images, config)
        repaired = _repair_published(config, index, published, shards, manifest_file, log)
        if repaired is not None:
            repaired.seconds = time.perf_counter() - started
            return repaired
        # Whatever the published check already computed is reused by the full rebuild.
        fingerprint, rebuild_all = published.fingerprint, True
    index = index or load_index(config)
    if not index.images:  # publishing 0 shards would only move the failure to training, with worse advice
        raise UserError(f"{config.source_label}: lists no images, so there is nothing to build; pass a source "
                        "that holds at least one image")
    if isinstance(index, CocoIndex) and config.kind == "coco":
        warn_annotation_problems(index, config.annotations, log)
    create_output_dir(config.out)
    if lock is not None:
        stack.enter_context(lock)
    fingerprint = fingerprint or fingerprint_source(config, index)
    source = source_record(config, index, source_sha, fingerprint)
    shards = shards if shards is not None else plan_shards(index.images, config)
    state = BuildState(config)
    if rebuild_all:
        clear_output(config.out, config.num_parts == 1, shards, state)
    else:
        _refuse_foreign_output(config, state, shards, source)
    state.write_fingerprint({"settings": config.settings(), "source": source})
    state.remove_stale_temp_files(shards)
    todo = [s for s in shards if state.read_marker(s) is None]

    def finished(shard: PlannedShard, marker: dict) -> None:
        state.write_marker(shard, marker)
        if on_shard is not None:
            on_shard(config.out / shard.name)

    processed = _write_shards(config, index, todo, finished, markers=True)
    markers = [state.read_marker(s) for s in shards]
    manifest = _assemble_manifest(config, index, source, shards, markers, fingerprint)
    _enforce_skip_limit(config, state, shards, manifest)
    manifest_io.write_manifest(manifest_file, manifest)
    state.discard(shards, remove_tars=False)
    seconds = time.perf_counter() - started
    return BuildResult(manifest_file, manifest, False, len(todo), len(shards) - len(todo), processed, seconds)


def warn_annotation_problems(index: CocoIndex, annotations: Path, log: Callable[[str], None]) -> None:
    """Warn, with counts, about what the JSON holds that the build accepts but the user probably did not mean."""
    if index.malformed_polygons:
        log(f"warning: {annotations}: {index.malformed_polygons} polygons have an odd number of coordinates or fewer "
            "than 3 points; they are dropped (an instance made only of such polygons gets an empty mask)")
    if not index.has_categories:
        log(f"warning: {annotations}: no `categories` list; category names will be missing from the manifest")
    elif index.unknown_category_annotations:
        log(f"warning: {annotations}: {index.unknown_category_annotations} annotations have a category_id that "
            "`categories` does not list")


def _confirm_up_to_date(manifest_file: Path, published: PublishedBuild, started: float) -> BuildResult:
    """A no-op; only a changed record of files the JSON does not list is written back."""
    if published.refreshed is not None:
        manifest_io.write_manifest(manifest_file, published.refreshed)
    manifest = published.refreshed or published.manifest
    return BuildResult(manifest_file, manifest, noop=True, seconds=time.perf_counter() - started)


def _repair_published(
    config: BuildConfig, index: CocoIndex | TarIndex, published: PublishedBuild, shards: list[PlannedShard],
    manifest_file: Path, log: Callable[[str], None],
) -> BuildResult | None:
    """Rebuild the missing or damaged shards of a matching published build, alone.

    Returns None when a rebuilt shard is not byte-identical to the published one (the libraries changed since that
    build): the caller then rebuilds every shard, so the output stays one consistent build.
    """
    recorded = {entry["name"]: entry for entry in published.manifest["shards"]}
    todo = [shard for shard in shards if shard.name in published.damaged]
    if len(todo) != len(published.damaged) or len(shards) != len(recorded):
        log(f"{config.out}: the published shards do not match this build's plan; rebuilding every shard")
        return None
    log(f"{config.out}: {len(todo)} published shards missing or damaged ({', '.join(published.damaged)}); "
        "rebuilding them")
    BuildState(config).remove_stale_temp_files(todo)
    rebuilt: dict[str, dict[str, Any]] = {}
    processed = _write_shards(config, index, todo, lambda shard, marker: rebuilt.__setitem__(shard.name, marker),
                              markers=False)
    differ = [name for name, marker in rebuilt.items() if _shard_entry(marker) != _shard_entry(recorded[name])]
    if differ:
        log(f"{config.out}: rebuilt {', '.join(differ)} differ from the published bytes (the libraries changed since "
            "that build?); rebuilding every shard")
        return None
    manifest = published.refreshed or published.manifest
    manifest_io.write_manifest(manifest_file, manifest)
    return BuildResult(manifest_file, manifest, False, len(todo), len(shards) - len(todo), processed)


def _shard_entry(record: dict[str, Any]) -> dict[str, Any]:
    """The manifest entry of a shard, from its done-marker or its published entry."""
    return {key: record.get(key) for key in manifest_io.SHARD_ENTRY_KEYS}


def _refuse_foreign_output(config: BuildConfig, state: BuildState, shards: list[PlannedShard], source: dict) -> None:
    """Refuse to mix with an unfinished build made differently, or with shard files of an unknown build."""
    fingerprint = state.read_fingerprint()
    if fingerprint is not None and not manifest_io.same_build(fingerprint, config.settings(), source):
        raise UserError(f"{config.out}: holds an unfinished build with other settings, another annotation file or "
                        "other images" + REFUSAL_FIX)
    if fingerprint is None and any((config.out / s.name).exists() for s in shards):
        raise UserError(f"{config.out}: holds shard files of an unknown build (no manifest, no build state)"
                        + REFUSAL_FIX)


def _write_shards(
    config: BuildConfig, index: CocoIndex | TarIndex, shards: list[PlannedShard],
    on_done: Callable[[PlannedShard, dict], None], markers: bool,
) -> int:
    """Write `shards`, handing each one's done-marker to `on_done`; returns the images processed.

    COCO and folders: images are processed in a pool in plan order and written here. SA-1B: each tar is streamed
    and its shards written by one worker (`tar_build.py`; with `markers`, workers write the done-markers too).
    """
    if not shards:
        return 0
    total_images = sum(len(s.images) for s in shards)
    if isinstance(index, TarIndex):
        workers = config.workers if config.workers is not None else default_workers()
        with _progress(config, total_images) as bar:
            write_tar_shards(config, index, shards, workers, on_done, bar, markers)
        return total_images
    kill_after = int(os.environ.get(KILL_HOOK_ENV, "-1"))
    with _progress(config, total_images) as bar, _results(config, shards) as results:
        for position, shard in enumerate(shards):
            on_done(shard, write_shard(config, shard, results, bar, kill_now=position == kill_after))
    return total_images


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

    A worker that dies (a segfault in a C library, the kernel's out-of-memory killer, a stray `kill`) breaks the
    pool: `concurrent.futures` notices at once, where `multiprocessing.Pool` would replace the worker and wait
    forever for the lost task. Each worker records in shared memory which image it is working on, so the failure
    names that image.
    """

    def __init__(self, config: BuildConfig, shards: list[PlannedShard]):
        self.config = config
        self.records = [record for shard in shards for record in shard.images]
        self.pool: ProcessPoolExecutor | None = None
        self.processes: dict[int, Any] = {}

    def __enter__(self) -> Iterator:
        workers = self.config.workers if self.config.workers is not None else default_workers()
        args = (str(self.config.images), self.config.size, self.config.image_format, self.config.quality)
        if workers <= 1 or len(self.records) <= 1:
            _init_worker(*args)
            return map(_process_image, self.records)
        context = process_context()
        self.busy = context.Array("q", 2 * workers, lock=False)  # per worker: (pid, position of its image + 1 or 0)
        slots = context.Value("i", 0)
        self.pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                        initargs=(*args, self.busy, slots))
        results = self.pool.map(_process_tracked, enumerate(self.records), chunksize=4)
        # The live dict of worker processes (pid -> Process): their exit codes tell which one died. Private, so
        # read defensively; without it the failure lists every image in progress instead of the dead worker's.
        self.processes = getattr(self.pool, "_processes", None) or {}
        return self._named_failures(results)

    def _named_failures(self, results: Iterator) -> Iterator:
        try:
            yield from results
        except BrokenProcessPool:
            raise RunFailure(self._death_message()) from None

    def _death_message(self) -> str:
        time.sleep(0.2)  # let the pool reap its workers so that exit codes are known
        in_progress = {int(self.busy[2 * i]): int(self.busy[2 * i + 1]) - 1 for i in range(len(self.busy) // 2)}
        dead = {pid: process.exitcode for pid, process in list(self.processes.items())
                if process.exitcode not in (None, 0, -signal.SIGTERM)}
        suspects = [(pid, in_progress.get(pid, -1)) for pid in dead] or list(in_progress.items())
        named = [f"{self.config.images / self.records[pos].file_name} (image id {self.records[pos].id})"
                 for _, pos in suspects if 0 <= pos < len(self.records)]
        how = ", ".join(f"pid {pid} {_exit_reason(code)}" for pid, code in dead.items()) or "abruptly"
        where = f" while processing {' or '.join(named)}" if named else ""
        return (f"{self.config.source_label}: a shard-build worker died ({how}){where}; nothing new was published; "
                "check or remove that image, or lower --workers if memory ran out, then rerun (finished shards are "
                "kept)")

    def __exit__(self, *exc: Any) -> None:
        if self.pool is not None:
            for process in list(self.processes.values()):
                process.terminate()  # an early exit does not wait for images nobody will read
            self.pool.shutdown(wait=True, cancel_futures=True)


def _exit_reason(code: int | None) -> str:
    if code is None or code >= 0:
        return f"exited with status {code}"
    name = signal.Signals(-code).name
    return f"killed by {name}" + (" (often the kernel's out-of-memory killer)" if name == "SIGKILL" else "")


_WORKER_ARGS: dict[str, Any] = {}

# Test hook: a worker processing the image of this file name kills itself with SIGSEGV (dead-worker tests).
SEGV_HOOK_ENV = "WAM_PIPE_TEST_SEGV_ON_IMAGE"


def _init_worker(images: str, size: int, image_format: str, quality: int, busy: Any = None, slots: Any = None
                 ) -> None:
    reset_signal_handlers()  # the parent's handlers (e.g. submitit's SIGTERM bypass) are not a worker's
    _WORKER_ARGS.update(images=Path(images), size=size, image_format=image_format, quality=quality, busy=busy)
    if slots is not None:
        _die_with_parent()
        with slots.get_lock():
            _WORKER_ARGS["slot"] = slots.value
            slots.value += 1
        busy[2 * _WORKER_ARGS["slot"]] = os.getpid()


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when the build process dies (kill -9 of a build must leave no orphan
    workers holding its output pipes open or writing on); a no-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _process_tracked(job: tuple[int, ImageRecord]) -> dict[str, Any] | tuple[str, str]:
    """`_process_image` in a pool worker, recording which image this worker holds while it works."""
    position, record = job
    busy, slot = _WORKER_ARGS["busy"], _WORKER_ARGS["slot"]
    busy[2 * slot + 1] = position + 1
    if record.file_name == os.environ.get(SEGV_HOOK_ENV):
        os.kill(os.getpid(), signal.SIGSEGV)
    result = _process_image(record)
    busy[2 * slot + 1] = 0
    return result


def _process_image(record: ImageRecord) -> dict[str, Any] | tuple[str, str]:
    """One image -> its tar members (+ `__stats__`), or `(kind, reason)` when it is skipped."""
    try:
        sample = prepare_sample(_WORKER_ARGS["images"], record, _WORKER_ARGS["size"])
    except SkipImage as skip:
        return skip.kind, skip.reason
    return sample_outcome(sample, _WORKER_ARGS["image_format"], _WORKER_ARGS["quality"])


def _assemble_manifest(
    config: BuildConfig, index: CocoIndex | TarIndex, source: dict, shards: list[PlannedShard],
    markers: list[dict | None],
    images: ImagesFingerprint,
) -> dict[str, Any]:
    if any(m is None for m in markers):  # cannot happen unless files vanish mid-build
        raise RunFailure(f"{config.out}: a shard finished during this build is missing; rerun the build")
    part = {"index": config.part, "count": config.num_parts} if config.num_parts > 1 else None
    return assemble_manifest(config.settings(), source, part, markers, index, images.files_not_in_json)


def _enforce_skip_limit(config: BuildConfig, state: BuildState, shards: list[PlannedShard], manifest: dict) -> None:
    total = sum(len(s.images) for s in shards)
    exceeded = skip_limit_exceeded(manifest["skipped"], total, config.max_skipped_fraction,
                                   config.out / f"skipped{config.suffix}.json")
    if exceeded:
        state.discard(shards, remove_tars=True)
        raise RunFailure(f"{config.source_label}: {exceeded}; nothing was published; fix the images or raise "
                         "--max-skipped-fraction")
