"""One rank's batches for an epoch, as a WebDataset `DataPipeline` run inside each DataLoader worker.

Per worker and epoch: the planner (`plan.py`, our explicit node + worker splitter) gives this worker's pieces;
the source reads them as *encoded* samples; a seeded shuffle buffer mixes the encoded bytes (before decode, so the
buffer stays small); the source decodes (image to uint8, masks from RLE by our own handler) with the sample-level RNG
seeded from `(seed, epoch, rank, worker)`; `batched` collates whole batches inside the worker (fewer, larger
pickles cross the process boundary), into a reusable shared-memory slot of a `BatchRing` when the loader has one
(`batch_ring.py`: only a slot number crosses the process boundary).

The epoch number reaches persistent workers through a shared `multiprocessing.Value` read at the start of each
iteration (a persistent worker keeps the dataset object it was created with).
"""

from __future__ import annotations

import multiprocessing
import random
from itertools import islice
from typing import Any, Iterable, Iterator, Protocol

import numpy as np
import torch
import webdataset as wds

from wam_pipe.data.readers import epoch_plan as plan
from wam_pipe.data.readers.batch_ring import BatchRing, RingLoader
from wam_pipe.data.readers.mask_select import MaskSelector
from wam_pipe.core.errors import UserError


class Source(Protocol):
    """Where samples come from: units with known sizes, read as cheap encoded items, decoded later."""

    unit_sizes: list[int]
    size: int  # sample side S in pixels
    buffered: bool  # whether a shuffle buffer helps (False when units are single samples already in random order)

    def read(self, pieces: Iterable[plan.Piece]) -> Iterator[Any]: ...

    def decode(self, item: Any, selector: MaskSelector, rng: np.random.Generator) -> dict[str, Any]: ...

    # Optional: `preload()` imports the decoder's modules in the main process before workers fork.


def sample_rng(seed: int, epoch: int, rank: int, worker: int, purpose: int) -> np.random.Generator:
    """The generator of one (rank, worker) in one epoch; `purpose` separates independent streams."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, rank, worker, purpose]))


class EpochStream(torch.utils.data.IterableDataset):
    """An IterableDataset of whole batches: this rank's share of the epoch held in `epoch_value`.

    Args:
        source: a `Source` (shards, per-file COCO, ...).
        selector: which instances become masks.
        collate: list of decoded samples -> batch dict.
        batch_size / seed / rank / world_size / drop_last / shuffle / shuffle_buffer / resampled / max_samples:
            as in `wam_pipe.stages.Load`.
    """

    def __init__(self, source: Source, selector: MaskSelector, collate: Any, *, batch_size: int, seed: int,
                 rank: int, world_size: int, drop_last: bool, shuffle: bool, shuffle_buffer: int, resampled: bool,
                 max_samples: int | None):
        super().__init__()
        self.source, self.selector, self.collate = source, selector, collate
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.drop_last, self.shuffle, self.shuffle_buffer = drop_last, shuffle, shuffle_buffer
        self.resampled, self.max_samples = resampled, max_samples
        self.epoch_value = multiprocessing.Value("q", 0)
        self.ring: BatchRing | None = None  # set by `make_loader` before the workers start
        preload = getattr(source, "preload", None)
        if preload is not None:
            preload()  # in the main process: forked workers inherit the imported modules

    def split(self, worker: int = 0, workers: int = 1) -> plan.Split:
        return plan.Split(self.world_size, self.rank, workers, worker, self.batch_size, self.drop_last)

    @property
    def total(self) -> int:
        return plan.usable_total(self.source.unit_sizes, self.max_samples)

    def batches_per_epoch(self) -> int:
        return plan.rank_batches(self.total, self.split())

    def set_epoch(self, epoch: int) -> None:
        self.epoch_value.value = int(epoch)

    def _pieces(self, epoch: int, split: plan.Split) -> Iterator[plan.Piece]:
        if self.resampled:
            rng = sample_rng(self.seed, epoch, self.rank, split.worker, 1)
            return plan.resampled_pieces(self.source.unit_sizes, rng)
        return iter(plan.epoch_pieces(self.source.unit_sizes, split, self.seed, epoch, self.shuffle, self.max_samples))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        epoch = int(self.epoch_value.value)
        split = self.split(worker, workers)
        start, stop = plan.worker_span(self.total, split)
        rng = sample_rng(self.seed, epoch, self.rank, worker, 0)
        pieces = self._pieces(epoch, split)
        stages: list[Any] = [lambda: islice(self.source.read(pieces), stop - start)]
        if self.shuffle and self.shuffle_buffer > 1 and self.source.buffered:
            shuffle_seed = int(sample_rng(self.seed, epoch, self.rank, worker, 2).integers(2**62))
            buffer_rng = random.Random(shuffle_seed)
            stages.append(wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer, rng=buffer_rng))
        stages.append(wds.map(lambda item: self.source.decode(item, self.selector, rng)))
        collate = self.collate
        if self.ring is not None and info is not None:
            ring = self.ring
            ring.start_epoch(worker)
            collate = lambda samples: ring.collate(worker, samples, self.collate)  # noqa: E731
        stages.append(wds.batched(self.batch_size, collation_fn=collate, partial=not self.drop_last))
        yield from wds.DataPipeline(*stages)


def _worker_init(worker_id: int) -> None:
    # One thread per worker: the workers are the parallelism; torch's intra-op pool would oversubscribe the cores.
    torch.set_num_threads(1)


def make_loader(stream: EpochStream, workers: int, prefetch_factor: int, persistent_workers: bool,
                pin_memory: bool, batch_ring: bool = True) -> Iterable[dict[str, Any]]:
    """A loader over a batch stream (a DataLoader with `batch_size=None`: the stream already yields batches).

    With workers and `batch_ring`, workers hand batches over through a `BatchRing` of `prefetch_factor + 2` slots
    each and the result is a `RingLoader` (same batches; see `batch_ring.py` for why).
    """
    extra: dict[str, Any] = {}
    if workers > 0:
        extra = {"prefetch_factor": prefetch_factor, "persistent_workers": persistent_workers,
                 "worker_init_fn": _worker_init}
    stream.ring = None
    if workers > 0 and batch_ring:
        stream.ring = BatchRing(workers, prefetch_factor + 2, stream.batch_size, stream.source.size,
                                stream.selector.channels, getattr(stream.collate, "channels_last", True))
    # The DataLoader draws its workers' base seed from this generator instead of the global torch RNG: with the
    # global RNG, a run's random stream (masks, messages, augmentations) would depend on how many times workers
    # were started (every epoch, or once with persistent workers), so a resumed run would draw differently from an
    # uninterrupted one. Our workers never use their base seed (every draw is seeded by seed, epoch, rank, worker).
    generator = torch.Generator().manual_seed(stream.seed)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers, pin_memory=pin_memory,
                                         generator=generator, **extra)
    return loader if stream.ring is None else RingLoader(loader, stream.ring)


def original_user_message(err: UserError) -> str:
    """The one-line message of a `UserError` raised in a DataLoader worker (torch wraps it with the traceback)."""
    text = str(err)
    if "Original Traceback" not in text:
        return text
    last = [line for line in text.splitlines() if line.strip()][-1]
    return last.split(": ", 1)[1] if ": " in last else last


def iterate(loader: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Iterate a loader, turning worker-side `UserError`s back into one-line messages."""
    try:
        yield from loader
    except UserError as err:
        raise type(err)(original_user_message(err)) from None
