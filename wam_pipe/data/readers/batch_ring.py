"""A ring of reusable shared-memory batch slots between DataLoader workers and the main process.

Why: a DataLoader worker normally sends each batch in *fresh* shared memory. For a 4 MB batch (16 x 256 x 256 RGB +
masks) that is a new shm segment per batch, ~1,000 page faults to fill it in the worker, ~1,000 more to read it in
the main process, and unmapping and freeing it again: measured on the 2-core dev VM, more CPU than decoding the
batch's masks, and most of the gap between the shard loader and the pure decode ceiling (benchmarks/RESULTS.md).

With a ring, each worker owns `slots` batch buffers allocated once, before the workers start. A worker collates a
batch straight into a free slot and sends only a small `RingBatch` handle (worker, slot, count, keys). The main
process copies the slot out (into pinned memory in the DataLoader's pin thread when `pin_memory` is on, else into
ordinary memory when the batch is received) and hands the slot back through a pipe. Copying out keeps the usual
DataLoader contract: a batch stays valid however long the consumer holds it.

Slot ownership:
- a slot is free in its worker until the worker fills it; it is then owned by the main process until the main
  process has copied it out and sent its number back on the worker's release pipe;
- the worker blocks for a release only when all its slots are in flight (at most `prefetch_factor` batches are
  requested from a worker at a time, so `prefetch_factor + 2` slots rarely wait);
- handles the DataLoader discards (an epoch abandoned midway) are never released; a worker therefore reclaims all
  its slots when it starts a new epoch, when the main process no longer holds any of its handles (the DataLoader
  drains or shuts down the previous epoch's workers before it requests a new epoch's first batch).

Memory: `workers x slots x batch bytes` of shared memory (/dev/shm) per rank, e.g. 8 x 6 x 4.2 MB = 201 MB for
batches of 16 at 256 px; a DataLoader without the ring keeps up to `workers x prefetch_factor` batches in shared
memory too.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch


_RINGS: "weakref.WeakValueDictionary[int, BatchRing]" = weakref.WeakValueDictionary()  # main process's rings
_RING_IDS = itertools.count()


@dataclass
class RingBatch:
    """What a worker sends instead of a batch: where the batch lies in the ring (a few bytes to pickle)."""

    ring_id: int
    worker: int
    slot: int
    count: int  # samples in the batch (the last batch of an epoch may be short)
    keys: list[str]

    def pin_memory(self, device: Any = None) -> dict[str, Any]:
        """Called by the DataLoader's pin thread (it calls `pin_memory()` on objects that have it)."""
        return _RINGS[self.ring_id].receive(self, pin=True)


class BatchRing:
    """`slots` shared batch buffers per worker, and one release pipe per worker.

    Args:
        workers: DataLoader worker processes.
        slots: buffers per worker (`prefetch_factor + 2` is plenty).
        batch_size: samples per batch.
        size: sample side S in pixels.
        mask_channels: K, mask channels per sample.
        channels_last: store images as (B, S, S, 3) and deliver channels-last views (as `Collate`).
    """

    def __init__(self, workers: int, slots: int, batch_size: int, size: int, mask_channels: int,
                 channels_last: bool = True):
        if workers < 1 or slots < 1:
            raise ValueError(f"a batch ring needs workers >= 1 and slots >= 1, got {workers} and {slots}")
        self.workers, self.slots, self.channels_last = workers, slots, channels_last
        image_shape = (size, size, 3) if channels_last else (3, size, size)
        # Allocated in the main process before the workers start, so that every worker maps the same memory.
        self.images = torch.empty((workers, slots, batch_size, *image_shape), dtype=torch.uint8).share_memory_()
        self.masks = torch.empty((workers, slots, batch_size, mask_channels, size, size),
                                 dtype=torch.uint8).share_memory_()
        self._pipes = [multiprocessing.Pipe(duplex=False) for _ in range(workers)]  # (worker's end, main's end)
        self._send_lock = threading.Lock()  # the pin thread and the main thread may both release
        self._parent = os.getpid()
        self._free: list[int] = []  # worker-local: this worker's free slots
        self.ring_id = next(_RING_IDS)
        _RINGS[self.ring_id] = self

    def __getstate__(self) -> dict[str, Any]:  # spawned workers receive the ring pickled; a lock is not picklable
        return {k: v for k, v in self.__dict__.items() if k != "_send_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._send_lock = threading.Lock()

    # --- worker side ---------------------------------------------------------------------------------------------

    def start_epoch(self, worker: int) -> None:
        """Reclaim every slot of `worker` (called by the worker at the start of each epoch; see the module doc)."""
        receive_end = self._pipes[worker][0]
        while receive_end.poll():
            receive_end.recv()
        self._free = list(range(self.slots))

    def collate(self, worker: int, samples: list[dict[str, Any]], collate: Any) -> RingBatch:
        """Collate `samples` into a free slot of `worker` with `collate(samples, out=(images, masks))`."""
        slot, images, masks = self._buffers(worker, len(samples))
        collate(samples, out=(images, masks))
        return RingBatch(self.ring_id, worker, slot, len(samples), [s["key"] for s in samples])

    def _buffers(self, worker: int, count: int) -> tuple[int, torch.Tensor, torch.Tensor]:
        """A free slot of `worker` and its image and mask buffers for `count` samples (blocks while none is free)."""
        receive_end = self._pipes[worker][0]
        while receive_end.poll():  # collect releases that have arrived, without waiting
            self._free.append(receive_end.recv())
        while not self._free:
            if receive_end.poll(1.0):
                self._free.append(receive_end.recv())
            elif os.getppid() != self._parent:
                raise RuntimeError("the main process is gone; loader worker stops")
        slot = self._free.pop(0)
        return slot, self.images[worker, slot, :count], self.masks[worker, slot, :count]

    # --- main-process side ---------------------------------------------------------------------------------------

    def receive(self, handle: RingBatch, pin: bool = False) -> dict[str, Any]:
        """Copy a batch out of its slot (into pinned memory with `pin`), release the slot, return the batch dict."""
        stored_images = self.images[handle.worker, handle.slot, : handle.count]  # (n, S, S, 3) or (n, 3, S, S)
        stored_masks = self.masks[handle.worker, handle.slot, : handle.count]  # (n, K, S, S)
        images = torch.empty(stored_images.shape, dtype=torch.uint8, pin_memory=pin)
        masks = torch.empty(stored_masks.shape, dtype=torch.uint8, pin_memory=pin)
        # A plain single-threaded memcpy: `Tensor.copy_` would fan a 3 MB copy out to the intra-op thread pool,
        # whose spinning threads cost ~10x the copy's CPU time when the loader workers occupy the cores.
        np.copyto(images.numpy(), stored_images.numpy())
        np.copyto(masks.numpy(), stored_masks.numpy())
        with self._send_lock:
            self._pipes[handle.worker][1].send(handle.slot)
        if self.channels_last:
            images = images.permute(0, 3, 1, 2)  # (n, 3, S, S) view with channels-last strides
        return {"images": images, "masks": masks, "keys": handle.keys}


class RingLoader:
    """Iterates a DataLoader whose workers send `RingBatch` handles, yielding ordinary batch dicts."""

    def __init__(self, dataloader: torch.utils.data.DataLoader, ring: BatchRing):
        self.dataloader, self.ring = dataloader, ring

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for item in self.dataloader:
            yield self.ring.receive(item) if isinstance(item, RingBatch) else item  # pinned batches are dicts already
