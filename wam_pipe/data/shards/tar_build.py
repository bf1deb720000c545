"""Write the shards of SA-1B tars: each worker streams one tar and writes that tar's planned shards itself.

Per tar: `tarfile` in stream mode (`r|`: one sequential read, nothing extracted to disk, no seeks), pairing
`sa_N.jpg` with `sa_N.json` as they pass (SA-1B stores them next to each other; a pair split further apart is held
until its second member arrives). Pairs of shards that are already finished are read past without decoding. Each
finished shard is renamed into place and gets its done-marker at once, so an interrupted build resumes per shard.
Shards depend only on their tar's bytes and the settings, never on the worker count or on which tars run where.

A tar that turns out truncated or changed since it was listed fails the build (`UserError`; the shards of other
tars written so far stay and are reused by the rerun).
"""

from __future__ import annotations

import os
import signal
import tarfile
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable

from wam_pipe.core.worker_pool import process_context, reset_signal_handlers
from wam_pipe.core.errors import RunFailure, UserError
from wam_pipe.data.sa1b_index import TarIndex, image_id_of
from wam_pipe.data.shards.build_state import BuildConfig, BuildState, PlannedShard
from wam_pipe.data.shards.prepare import SkipImage, prepare_sa1b_sample
from wam_pipe.data.shards.write_shard import sample_outcome, write_shard

# Test hook: the worker streaming the tar of this file name kills itself with SIGSEGV (dead-worker tests).
SEGV_HOOK_ENV = "WAM_PIPE_TEST_SEGV_ON_TAR"


def write_tar_shards(config: BuildConfig, index: TarIndex, shards: list[PlannedShard], workers: int,
                     on_done: Callable[[PlannedShard, dict], None], bar: Any, markers: bool) -> None:
    """Write `shards` (grouped by tar), one task per tar, over `workers` processes; `on_done` per finished shard.

    With `markers`, each worker also writes a shard's done-marker as soon as the shard is renamed into place (so a
    crash loses at most the shard being written, not the tar's finished ones).
    """
    by_group: dict[int, list[PlannedShard]] = {}
    for shard in shards:
        by_group.setdefault(shard.group, []).append(shard)
    tasks = [(config, str(index.tars[group]), todo, markers) for group, todo in sorted(by_group.items())]
    if workers <= 1 or len(tasks) <= 1:
        results = map(_write_one_tar, tasks)
        _collect(results, on_done, bar)
        return
    context = process_context()
    # concurrent.futures, not multiprocessing.Pool: a worker that dies (segfault, out-of-memory killer) breaks the
    # pool at once instead of leaving the build waiting forever for the lost tar.
    with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=context,
                             initializer=reset_signal_handlers) as pool:
        pending = {pool.submit(_write_one_tar, task): task[1] for task in tasks}
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    result = future.result()  # raises while the future is still pending: the message names its tar
                    pending.pop(future)
                    _collect([result], on_done, bar)
        except BaseException as err:
            for future in pending:
                future.cancel()
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()  # a failed build does not wait for the other tars (private map: read defensively)
            if not isinstance(err, BrokenProcessPool):
                raise
            raise RunFailure(f"{config.source_label}: a shard-build worker died (killed, e.g. by the out-of-memory "
                             f"killer, or crashed) while streaming one of {', '.join(sorted(pending.values()))}; "
                             "nothing new was published; lower --workers or --max-masks if memory ran out, then rerun "
                             "(finished shards are kept)") from None


def _collect(results: Any, on_done: Callable[[PlannedShard, dict], None], bar: Any) -> None:
    for done in results:
        for shard, marker in done:
            on_done(shard, marker)
            bar.update(len(shard.images))


def _write_one_tar(task: tuple[BuildConfig, str, list[PlannedShard], bool]) -> list[tuple[PlannedShard, dict]]:
    """Stream one tar and write its `todo` shards; returns (shard, done-marker) pairs."""
    config, tar_path, todo, markers = task
    if Path(tar_path).name == os.environ.get(SEGV_HOOK_ENV):
        os.kill(os.getpid(), signal.SIGSEGV)
    state = BuildState(config)
    shard_of = {record.id: shard for shard in todo for record in shard.images}
    record_of = {record.id: record for shard in todo for record in shard.images}
    outcomes: dict[int, Any] = {}  # image id -> tar members or (kind, reason), for shards not yet complete
    remaining = {shard.index: len(shard.images) for shard in todo}
    done: list[tuple[PlannedShard, dict]] = []
    for image_id, image_bytes, json_bytes in _stream_pairs(Path(tar_path), set(shard_of)):
        shard = shard_of[image_id]
        outcomes[image_id] = _process(config, record_of[image_id], image_bytes, json_bytes)
        remaining[shard.index] -= 1
        if remaining[shard.index] == 0:
            marker = write_shard(config, shard, (outcomes.pop(r.id) for r in shard.images))
            if markers:
                state.write_marker(shard, marker)
            done.append((shard, marker))
    missing = [shard.name for shard in todo if remaining[shard.index]]
    if missing:
        raise UserError(f"{tar_path}: changed since it was listed (images of {', '.join(missing)} not found when "
                        "streaming it); rerun the build")
    return done


def _stream_pairs(path: Path, wanted: set[int]) -> Any:
    """Yield `(image id, image bytes, json bytes)` of the wanted pairs, in the order the tar completes them."""
    pending: dict[int, dict[str, bytes]] = {}
    try:
        with open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                suffix = Path(member.name).suffix.lower()
                kind = "image" if suffix in (".jpg", ".jpeg") else "json" if suffix == ".json" else None
                image_id = image_id_of(member.name) if kind else None
                if image_id is None or image_id not in wanted:
                    continue  # stream mode reads past the data on the next iteration
                stream = archive.extractfile(member)
                data = stream.read() if stream is not None else b""
                if len(data) != member.size:
                    raise tarfile.ReadError(f"member {member.name} is truncated")
                parts = pending.setdefault(image_id, {})
                parts[kind] = data
                if len(parts) == 2:
                    del pending[image_id]
                    yield image_id, parts["image"], parts["json"]
    except (tarfile.TarError, OSError) as err:
        raise UserError(f"{path}: damaged or truncated while streaming ({err}); re-download this tar") from None


def _process(config: BuildConfig, record: Any, image_bytes: bytes, json_bytes: bytes) -> Any:
    """One pair -> its tar members (with `__stats__`), or `(kind, reason)` when it is skipped."""
    try:
        sample = prepare_sa1b_sample(record, image_bytes, json_bytes, config.size, config.max_masks,
                                     config.mask_order)
    except SkipImage as skip:
        return skip.kind, skip.reason
    return sample_outcome(sample, config.image_format, config.quality)
