"""The arms of `wam-pipe bench load`, each able to run one epoch and report its timing.

- `per_file_reference`: the per-file COCO loader (`Load(images=..., annotations=...)`): full-resolution decode,
  resize + crop, runtime rasterisation of the chosen instances; JSON parsed once, workers, persistent workers.
- `per_file_resized`: the shards' exact bytes extracted to one `<key>.jpg` + `<key>.json` pair per sample, read
  file by file through the same decode path as the shards.
- `shards`: `Load(shards=...)`.
- `shards_no_ring`: the same without the shared-memory batch ring (`Load(batch_ring=False)`): each batch is sent in
  fresh shared memory, the plain DataLoader hand-over; `shards` / this is the ring's gain.
- `decode_ceiling`: the shards' samples held in memory, decoded (same decode + mask selection + collate) by the
  same number of processes, with no I/O, no tar parsing and no inter-process transfer of batches.
- `decode_ceiling_delivered`: the same in-memory samples through the same DataLoader workers, so batches are also
  delivered to the main process; `shards` / this isolates the cost of I/O + tar parsing from the cost of delivery.
All arms use the same batch size, workers, decoder, mask mode and DataLoader settings.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from wam_pipe.core.worker_pool import worker_pool
from wam_pipe.data.readers.decode import Collate, decode_stored
from wam_pipe.data.readers.mask_select import MaskSelector
from wam_pipe.data.readers.epoch_plan import Piece
from wam_pipe.data.shards.tar_io import EncodedSample, read_samples
from wam_pipe.data.readers.decode import preload_decoder
from wam_pipe.data.readers.stream import make_loader


@dataclass
class EpochTiming:
    """One measured epoch: wall-clock seconds, and CPU seconds used by the arm's processes (main + workers)."""

    samples: int
    seconds: float
    first_batch_s: float
    cpu_s: float | None = None

    @property
    def img_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_img(self) -> float | None:
        return 1e3 * self.cpu_s / self.samples if self.cpu_s is not None and self.samples else None


def process_cpu_seconds(pids: Iterable[int]) -> float | None:
    """User + system CPU seconds of other processes (Linux `/proc/<pid>/stat`); None where unavailable.

    CPU time, unlike wall time, does not depend on what else the machine runs, so it compares arms fairly on a
    shared machine.
    """
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15 of stat)
    return total


def _cpu_now(worker_pids: list[int]) -> float | None:
    workers = process_cpu_seconds(worker_pids)
    return None if workers is None else time.process_time() + workers


@dataclass
class ArmSettings:
    batch_size: int
    workers: int
    decoder: str
    seed: int = 0
    prefetch_factor: int = 4
    selector: MaskSelector = field(default_factory=MaskSelector)


class FolderSource:
    """Pre-resized per-file samples (`<key>.<ext>` + `<key>.json` in one folder) as a loader `Source`."""

    buffered = False  # units are single samples, reshuffled per epoch by the planner

    def __init__(self, directory: Path, size: int, decoder: str):
        self.directory = Path(directory)
        self.keys = sorted(p.stem for p in self.directory.glob("*.json"))
        self.exts = {p.stem: p.suffix[1:] for p in self.directory.iterdir() if p.suffix != ".json"}
        self.unit_sizes = [1] * len(self.keys)
        self.size, self.decoder = size, decoder

    def preload(self) -> None:
        preload_decoder(self.decoder)

    def read(self, pieces: Iterable[Piece]) -> Iterator[EncodedSample]:
        for piece in pieces:
            key = self.keys[piece.unit]
            ext = self.exts[key]
            image = (self.directory / f"{key}.{ext}").read_bytes()
            meta = (self.directory / f"{key}.json").read_bytes()
            yield EncodedSample(key, ext, image, meta, f"{key}.{ext}")

    def decode(self, item: EncodedSample, selector: MaskSelector, rng: np.random.Generator) -> dict[str, Any]:
        return decode_stored(item, selector, rng, self.size, self.decoder)


class MemorySource:
    """The shards' samples held in memory (loaded before the workers fork) as a loader `Source`."""

    buffered = True

    def __init__(self, shard_dir: Path, manifest: dict[str, Any], decoder: str):
        self.units = [list(read_samples(shard_dir / s["name"])) for s in manifest["shards"]]
        self.unit_sizes = [len(unit) for unit in self.units]
        self.size, self.decoder = int(manifest["settings"]["size"]), decoder

    def preload(self) -> None:
        preload_decoder(self.decoder)

    def read(self, pieces: Iterable[Piece]) -> Iterator[EncodedSample]:
        for piece in pieces:
            yield from self.units[piece.unit][piece.start : piece.stop]

    def decode(self, item: EncodedSample, selector: MaskSelector, rng: np.random.Generator) -> dict[str, Any]:
        return decode_stored(item, selector, rng, self.size, self.decoder)


def extract_to_folder(shard_dir: Path, manifest: dict[str, Any], out: Path) -> list[Path]:
    """Write every sample of the shards as separate files (identical bytes); returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for shard in manifest["shards"]:
        for sample in read_samples(shard_dir / shard["name"]):
            for ext, data in ((sample.image_ext, sample.image), ("json", sample.meta)):
                path = out / f"{sample.key}.{ext}"
                path.write_bytes(data)
                written.append(path)
    return written


class LoaderArm:
    """An arm backed by a DataLoader over an `EpochStream` (the three loader arms)."""

    def __init__(self, name: str, make_stream: Any, settings: ArmSettings, files: list[Path], batch_ring: bool = True):
        self.name, self.settings, self.files, self.batch_ring = name, settings, files, batch_ring
        self._make_stream = make_stream
        self.loader: Any = None
        self.stream: Any = None

    def setup(self) -> None:
        self.stream = self._make_stream()
        self.loader = make_loader(self.stream, self.settings.workers, self.settings.prefetch_factor,
                                  persistent_workers=True, pin_memory=False, batch_ring=self.batch_ring)

    def _worker_pids(self) -> list[int]:
        # Persistent workers live in the loader's iterator once the first epoch has started them.
        dataloader = getattr(self.loader, "dataloader", self.loader)  # a RingLoader wraps the DataLoader
        iterator = getattr(dataloader, "_iterator", None)
        return [worker.pid for worker in getattr(iterator, "_workers", [])]

    def run_epoch(self, epoch: int) -> EpochTiming:
        self.stream.set_epoch(epoch)
        pids = self._worker_pids()
        cpu_start = _cpu_now(pids)
        start = time.perf_counter()
        first, samples = None, 0
        for batch in self.loader:
            samples += len(batch["keys"])
            if first is None:
                first = time.perf_counter() - start
        seconds = time.perf_counter() - start
        cpu_end = _cpu_now(pids)
        cpu = cpu_end - cpu_start if cpu_start is not None and cpu_end is not None and pids else None
        return EpochTiming(samples, seconds, first or 0.0, cpu)


_CEILING_SAMPLES: list[EncodedSample] = []
_CEILING_ARGS: dict[str, Any] = {}
_COLLATE = Collate(channels_last=True)  # as the loader arms


def _decode_share(job: tuple[int, int, int]) -> int:
    """Decode samples `start..stop` of the in-memory list into batches; returns how many were decoded."""
    start, stop, epoch = job
    settings: ArmSettings = _CEILING_ARGS["settings"]
    rng = np.random.default_rng([settings.seed, epoch, start])
    size = _CEILING_ARGS["size"]
    done = 0
    for first in range(start, stop, settings.batch_size):
        chunk = _CEILING_SAMPLES[first : min(first + settings.batch_size, stop)]
        _COLLATE([decode_stored(s, settings.selector, rng, size, settings.decoder) for s in chunk])
        done += len(chunk)
    return done


def _ceiling_worker_init() -> None:
    import torch

    torch.set_num_threads(1)


class CeilingArm:
    """Decode the shards' samples from memory in `workers` processes (a fork pool started once)."""

    name = "decode_ceiling"
    files: list[Path] = []

    def __init__(self, shard_dir: Path, manifest: dict[str, Any], settings: ArmSettings):
        self.shard_dir, self.manifest, self.settings = shard_dir, manifest, settings
        self.pool: Any = None

    def setup(self) -> None:
        _CEILING_SAMPLES.clear()
        for shard in self.manifest["shards"]:
            _CEILING_SAMPLES.extend(read_samples(self.shard_dir / shard["name"]))
        _CEILING_ARGS.update(settings=self.settings, size=int(self.manifest["settings"]["size"]))

        preload_decoder(self.settings.decoder)  # before forking, as the loader arms do
        processes = max(self.settings.workers, 1)
        self.pool = worker_pool(processes, initializer=_ceiling_worker_init)

    def run_epoch(self, epoch: int) -> EpochTiming:
        processes = max(self.settings.workers, 1)
        total = len(_CEILING_SAMPLES)
        bounds = np.linspace(0, total, processes + 1).astype(int)
        jobs = [(int(bounds[i]), int(bounds[i + 1]), epoch) for i in range(processes)]
        first_start = time.perf_counter()
        self.pool.apply(_decode_share, ((0, min(self.settings.batch_size, total), epoch),))
        first = time.perf_counter() - first_start
        pids = [process.pid for process in self.pool._pool]  # noqa: SLF001 (no public accessor)
        cpu_start = _cpu_now(pids)
        start = time.perf_counter()
        done = sum(self.pool.map(_decode_share, jobs, chunksize=1))
        seconds = time.perf_counter() - start
        cpu_end = _cpu_now(pids)
        cpu = cpu_end - cpu_start if cpu_start is not None and cpu_end is not None else None
        return EpochTiming(done, seconds, first, cpu)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


def drop_from_page_cache(files: Iterable[Path]) -> int:
    """`posix_fadvise(DONTNEED)` on each file (after fsync, so the pages are clean); returns how many were dropped."""
    dropped = 0
    for path in files:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            dropped += 1
        finally:
            os.close(fd)
    return dropped
