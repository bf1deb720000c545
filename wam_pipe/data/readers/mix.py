"""A weighted mix of shard sets: each batch's samples drawn by weight, an epoch a fixed number of batches.

Per (epoch, rank, worker), a generator seeded from `(seed, epoch, rank, worker)` draws which set each sample of
each of the worker's batches comes from (`weights`, normalised); each set is read as an endless resampled stream
(whole shards drawn with replacement, weighted by size, seeded per set) through its own shuffle buffer. So:
- every rank yields exactly `epoch_batches` batches (its workers share them: worker w of W makes
  `epoch_batches // W` batches, plus one for the first `epoch_batches % W`), whatever the sets' sizes: no DDP hang;
- the same seed, world size and worker count give the same batches (a resumed run draws what the uninterrupted
  one drew);
- the realized mix of an epoch is known without reading anything (`realized_counts`: the draws are the choices);
- as with `resampled: true`, samples can repeat or be missed within an epoch: an "epoch" is a number of batches,
  not a pass over the data.

Sample keys are prefixed with their set's name (`coco/000000000042`) so that keys stay unique across sets.
"""

from __future__ import annotations

import multiprocessing
import random
from typing import Any, Iterator

import numpy as np
import torch
import webdataset as wds

from wam_pipe.data.readers import epoch_plan as plan
from wam_pipe.data.readers.batch_ring import BatchRing
from wam_pipe.data.readers.mask_select import MaskSelector
from wam_pipe.data.readers.stream import sample_rng

CHOICE_PURPOSE = 3  # sample_rng purposes 0-2 are the single-set stream's (masks, resampling, shuffle buffer)


def worker_batches(epoch_batches: int, worker: int, workers: int) -> int:
    """How many of a rank's `epoch_batches` worker `worker` of `workers` makes."""
    return epoch_batches // workers + (worker < epoch_batches % workers)


def set_choices(seed: int, epoch: int, rank: int, worker: int, samples: int, weights: np.ndarray) -> np.ndarray:
    """`(samples,)` set indices of one worker's samples in an epoch, drawn by `weights` (normalised)."""
    rng = sample_rng(seed, epoch, rank, worker, CHOICE_PURPOSE)
    return rng.choice(len(weights), size=samples, p=weights / weights.sum())


class MixStream(torch.utils.data.IterableDataset):
    """An IterableDataset of whole batches drawn from several sources by weight (see the module docstring).

    Args:
        sources: one loader `Source` per set (all of the same sample size).
        names: each set's name (the key prefix, and the log's label).
        weights: each set's weight (>= 0, not all 0).
        selector / collate: as in `EpochStream`.
        batch_size / seed / rank / world_size / shuffle_buffer: as in `wam_pipe.stages.Load`.
        epoch_batches: batches per rank per epoch.
    """

    def __init__(self, sources: list[Any], names: list[str], weights: list[float], selector: MaskSelector,
                 collate: Any, *, batch_size: int, seed: int, rank: int, world_size: int, shuffle_buffer: int,
                 epoch_batches: int):
        super().__init__()
        self.sources, self.names = sources, names
        self.weights = np.asarray(weights, dtype=np.float64)
        self.selector, self.collate = selector, collate
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.shuffle_buffer, self.epoch_batches = shuffle_buffer, epoch_batches
        self.source = sources[0]  # `make_loader` reads the sample size (S) from `stream.source.size`
        self.epoch_value = multiprocessing.Value("q", 0)
        self.ring: BatchRing | None = None
        for source in sources:
            preload = getattr(source, "preload", None)
            if preload is not None:
                preload()

    @property
    def total(self) -> int:
        """Samples per epoch across all ranks."""
        return self.epoch_batches * self.batch_size * self.world_size

    def batches_per_epoch(self) -> int:
        return self.epoch_batches

    def set_epoch(self, epoch: int) -> None:
        self.epoch_value.value = int(epoch)

    def realized_counts(self, epoch: int, workers: int) -> list[int]:
        """Samples each set gives in `epoch` over all ranks (recomputed from the seeded draws, nothing read)."""
        counts = np.zeros(len(self.sources), dtype=np.int64)
        for rank in range(self.world_size):
            for worker in range(workers):
                samples = worker_batches(self.epoch_batches, worker, workers) * self.batch_size
                choices = set_choices(self.seed, epoch, rank, worker, samples, self.weights)
                counts += np.bincount(choices, minlength=len(self.sources))
        return [int(c) for c in counts]

    def _set_stream(self, index: int, epoch: int, worker: int, rng: np.random.Generator) -> Iterator[dict]:
        """Set `index`'s endless stream of decoded samples for this worker and epoch."""
        source = self.sources[index]
        pieces_rng = sample_rng(self.seed, epoch, self.rank, worker, 16 + 2 * index)
        items: Iterator[Any] = source.read(plan.resampled_pieces(source.unit_sizes, pieces_rng))
        if self.shuffle_buffer > 1 and source.buffered:
            seed = int(sample_rng(self.seed, epoch, self.rank, worker, 17 + 2 * index).integers(2**62))
            items = wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer, rng=random.Random(seed))(items)
        prefix = self.names[index] + "/"
        for item in items:
            sample = source.decode(item, self.selector, rng)
            sample["key"] = prefix + str(sample["key"])
            yield sample

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        epoch = int(self.epoch_value.value)
        batches = worker_batches(self.epoch_batches, worker, workers)
        choices = set_choices(self.seed, epoch, self.rank, worker, batches * self.batch_size, self.weights)
        rng = sample_rng(self.seed, epoch, self.rank, worker, 0)
        streams: dict[int, Iterator[dict]] = {}
        collate = self.collate
        if self.ring is not None and info is not None:
            ring = self.ring
            ring.start_epoch(worker)
            collate = lambda samples: ring.collate(worker, samples, self.collate)  # noqa: E731
        for batch in range(batches):
            samples = []
            for choice in choices[batch * self.batch_size : (batch + 1) * self.batch_size]:
                choice = int(choice)
                if choice not in streams:
                    streams[choice] = self._set_stream(choice, epoch, worker, rng)
                samples.append(next(streams[choice]))
            yield collate(samples)

