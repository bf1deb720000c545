"""Which samples each (rank, worker) reads in an epoch: exact once-per-epoch coverage with equal batch counts.

The data is a list of *units* with known sample counts (shards from the manifest; single images for the per-file
loader). Every epoch:
1. the units are put in an order seeded by `(seed, epoch)`, identical on every rank (so shards move between ranks
   and workers from one epoch to the next, unlike WebDataset's shuffle-after-split);
2. the ordered units form one virtual sequence of `total` samples (`max_samples` truncates it);
3. rank r takes a contiguous span of it: with `drop_last`, `floor(total / world)` samples rounded down to whole
   batches, so every rank has the same number of batches (no DDP hang); without it, a balanced split where each
   sample is read exactly once across ranks (evaluation);
4. the rank's span is cut into whole batches, handed to its workers as contiguous blocks;
5. a worker's block maps back to `(unit, start, stop)` pieces; a unit split between two consumers is read
   partly by each (the shard reader seeks past the samples before `start`).
This plays the role of WebDataset's node and worker splitters, but splits at sample granularity, so coverage is
exact whatever the shard sizes, and there is no "No samples found" failure mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np


@dataclass(frozen=True)
class Piece:
    """Samples `start .. stop-1` of unit `unit`."""

    unit: int
    start: int
    stop: int


@dataclass(frozen=True)
class Split:
    """How one epoch is divided: this consumer's place among ranks and workers."""

    world_size: int = 1
    rank: int = 0
    workers: int = 1
    worker: int = 0
    batch_size: int = 16
    drop_last: bool = True


def usable_total(unit_sizes: list[int], max_samples: int | None) -> int:
    total = int(sum(unit_sizes))
    return total if max_samples is None else min(total, int(max_samples))


def rank_span(total: int, split: Split) -> tuple[int, int]:
    """The `[start, stop)` range of the virtual sequence that `split.rank` reads this epoch."""
    if split.drop_last:
        per_rank = total // split.world_size
        count = per_rank // split.batch_size * split.batch_size
        start = split.rank * per_rank
        return start, start + count
    base, extra = divmod(total, split.world_size)
    start = split.rank * base + min(split.rank, extra)
    return start, start + base + (split.rank < extra)


def batch_count(count: int, batch_size: int, drop_last: bool) -> int:
    return count // batch_size if drop_last else -(-count // batch_size)


def rank_batches(total: int, split: Split) -> int:
    """Batches `split.rank` yields per epoch (the same on every rank when `drop_last`)."""
    start, stop = rank_span(total, split)
    return batch_count(stop - start, split.batch_size, split.drop_last)


def worker_span(total: int, split: Split) -> tuple[int, int]:
    """The contiguous whole-batch block of the rank's span that `split.worker` reads."""
    start, stop = rank_span(total, split)
    batches = batch_count(stop - start, split.batch_size, split.drop_last)
    per, extra = divmod(batches, split.workers)
    first = split.worker * per + min(split.worker, extra)
    last = first + per + (split.worker < extra)
    return min(start + first * split.batch_size, stop), min(start + last * split.batch_size, stop)


def unit_order(n_units: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The epoch's unit order: a permutation seeded by `(seed, epoch)` (same on all ranks), or identity."""
    if not shuffle:
        return np.arange(n_units)
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, 0x5A4D])).permutation(n_units)


def pieces_in(order: np.ndarray, unit_sizes: list[int], start: int, stop: int) -> list[Piece]:
    """The pieces of units (taken in `order`) that cover virtual positions `[start, stop)`."""
    if stop <= start:
        return []
    sizes = np.asarray(unit_sizes, dtype=np.int64)[order]
    ends = np.cumsum(sizes)  # end position of each ordered unit
    first = int(np.searchsorted(ends, start, side="right"))
    pieces = []
    for position in range(first, len(order)):
        unit_start = int(ends[position] - sizes[position])
        if unit_start >= stop:
            break
        lo, hi = max(start - unit_start, 0), min(stop - unit_start, int(sizes[position]))
        if hi > lo:
            pieces.append(Piece(int(order[position]), lo, hi))
    return pieces


def epoch_pieces(unit_sizes: list[int], split: Split, seed: int, epoch: int, shuffle: bool,
                 max_samples: int | None = None) -> list[Piece]:
    """Everything one (rank, worker) reads in `epoch`, in reading order."""
    total = usable_total(unit_sizes, max_samples)
    order = unit_order(len(unit_sizes), seed, epoch, shuffle)
    start, stop = worker_span(total, split)
    return pieces_in(order, unit_sizes, start, stop)


def resampled_pieces(unit_sizes: list[int], rng: np.random.Generator) -> Iterator[Piece]:
    """Endless whole units drawn with replacement, weighted by size (each sample equally likely)."""
    sizes = np.asarray(unit_sizes, dtype=np.float64)
    if sizes.sum() <= 0:
        return
    weights = sizes / sizes.sum()
    while True:
        for unit in rng.choice(len(sizes), size=64, p=weights):
            yield Piece(int(unit), 0, int(sizes[unit]))
