"""The shared-memory batch ring: same batches as the plain hand-over, batches stay valid, slots come back."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from wam_pipe.data.readers.batch_ring import BatchRing, RingBatch, RingLoader
from wam_pipe.core.context import RunContext
from wam_pipe.stages import Load


def _load(shards: Path, **kw) -> Load:
    settings = {"size": 64, "batch_size": 3, "workers": 2, "prefetch_factor": 2, "shuffle_buffer": 8, **kw}
    load = Load(shards=str(shards), **settings)
    load.setup(RunContext(run_dir=Path("."), log=lambda message: None, seed=5))
    return load


def _assert_same(batches: list[dict], expected: list[dict]) -> None:
    assert len(batches) == len(expected)
    for got, want in zip(batches, expected):
        assert got["keys"] == want["keys"]
        assert torch.equal(got["images"], want["images"]) and torch.equal(got["masks"], want["masks"])
        assert got["images"].stride() == want["images"].stride()  # same memory layout (channels-last or not)


@pytest.mark.parametrize("settings", [
    {"persistent_workers": True},
    {"persistent_workers": False, "channels_last": False, "mask_mode": "instances", "max_masks": 2},
    {"drop_last": False, "batch_size": 5, "shuffle": False},  # a short last batch per worker
])
def test_ring_gives_the_same_batches_as_the_plain_handover(synth_shards, settings):
    ring, plain = _load(synth_shards, **settings), _load(synth_shards, batch_ring=False, **settings)
    assert isinstance(ring._loader, RingLoader) and not isinstance(plain._loader, RingLoader)
    for epoch in range(2):
        # Every batch of the epoch is held at once: 12 batches against 2 workers x 4 slots, so slots are reused
        # while earlier batches are still alive; they must not change.
        _assert_same(list(ring.epoch(epoch)), list(plain.epoch(epoch)))


def test_abandoned_epoch_does_not_leak_slots(synth_shards):
    """Breaking out of an epoch leaves handles the DataLoader drops unreleased; the next epochs must not hang or
    change (each worker reclaims its slots when an epoch starts)."""
    ring, plain = _load(synth_shards, prefetch_factor=1), _load(synth_shards, prefetch_factor=1, batch_ring=False)
    for _ in range(3):
        next(iter(ring.epoch(0)))  # 2 workers x 3 slots: three abandoned epochs would exhaust a leaking ring
    _assert_same(list(ring.epoch(1)), list(plain.epoch(1)))


def test_workers_zero_has_no_ring(synth_shards):
    load = _load(synth_shards, workers=0)
    assert not isinstance(load._loader, RingLoader)
    assert len(list(load.epoch(0))) == 12


def _samples(count: int, value: int) -> list[dict]:
    return [{"key": f"{value}-{i}", "image": torch.full((3, 8, 8), value, dtype=torch.uint8),
             "masks": torch.full((1, 8, 8), value % 2, dtype=torch.uint8)} for i in range(count)]


def test_worker_waits_for_a_released_slot():
    from wam_pipe.data.readers.decode import Collate

    ring = BatchRing(workers=1, slots=2, batch_size=4, size=8, mask_channels=1)
    ring.start_epoch(0)
    first = ring.collate(0, _samples(4, 1), Collate())
    second = ring.collate(0, _samples(2, 2), Collate())
    assert isinstance(first, RingBatch) and {first.slot, second.slot} == {0, 1} and second.count == 2
    blocked = {}

    def third() -> None:  # no slot is free until the main side receives a batch
        blocked["handle"] = ring.collate(0, _samples(4, 3), Collate())

    thread = threading.Thread(target=third)
    thread.start()
    thread.join(0.3)
    assert thread.is_alive()  # still waiting
    batch = ring.receive(first)
    thread.join(5)
    assert not thread.is_alive() and blocked["handle"].slot == first.slot
    # The received copy is unaffected by the slot's reuse.
    assert batch["images"].shape == (4, 3, 8, 8) and int(batch["images"].max()) == 1
    assert batch["keys"] == [f"1-{i}" for i in range(4)]
    assert ring.receive(second)["images"].shape == (2, 3, 8, 8)
