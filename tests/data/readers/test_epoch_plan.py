from __future__ import annotations

import numpy as np
import pytest

from wam_pipe.data.readers.epoch_plan import Split, epoch_pieces, rank_batches, resampled_pieces, unit_order, usable_total


def _coverage(sizes, world, workers, batch, drop_last, max_samples=None, epoch=0):
    """Samples (unit, index) read per rank, and each rank's batch count, from the planner alone."""
    per_rank, batches = [], []
    for rank in range(world):
        seen, count = [], 0
        for worker in range(workers):
            split = Split(world, rank, workers, worker, batch, drop_last)
            pieces = epoch_pieces(sizes, split, seed=7, epoch=epoch, shuffle=True, max_samples=max_samples)
            n = sum(p.stop - p.start for p in pieces)
            count += n // batch if drop_last else -(-n // batch)
            seen += [(p.unit, i) for p in pieces for i in range(p.start, p.stop)]
        per_rank.append(seen)
        batches.append(count)
    return per_rank, batches


def test_random_configurations_cover_exactly_with_equal_batches():
    rng = np.random.default_rng(11)
    for _ in range(300):
        sizes = [int(s) for s in rng.integers(0, 40, int(rng.integers(1, 12)))]
        world, workers, batch = (int(v) for v in (rng.integers(1, 5), rng.integers(1, 4), rng.integers(1, 9)))
        drop_last = bool(rng.integers(0, 2))
        max_samples = None if rng.random() < 0.5 else int(rng.integers(0, 100))
        total = usable_total(sizes, max_samples)
        per_rank, batches = _coverage(sizes, world, workers, batch, drop_last, max_samples)
        everything = [s for seen in per_rank for s in seen]
        assert len(everything) == len(set(everything))  # nothing read twice
        for rank in range(world):
            assert batches[rank] == rank_batches(total, Split(world, rank, 1, 0, batch, drop_last))
        if drop_last:
            assert len(set(batches)) == 1  # every rank the same batch count: no DDP hang
            assert len(everything) == batches[0] * batch * world
            assert total - len(everything) < world * (batch + 1)  # only the unavoidable remainder is dropped
        else:
            assert len(everything) == total  # evaluation: each sample exactly once across ranks


def test_uneven_shards_still_split_evenly_across_ranks():
    sizes = [512] * 9 + [15]  # a typical build: the last shard is short
    per_rank, batches = _coverage(sizes, world=4, workers=3, batch=16, drop_last=True)
    assert len(set(batches)) == 1 and batches[0] == (sum(sizes) // 4) // 16


def test_unit_order_changes_with_epoch_and_is_identical_across_ranks():
    orders = [tuple(unit_order(32, seed=3, epoch=e, shuffle=True)) for e in range(4)]
    assert len(set(orders)) == 4
    assert tuple(unit_order(32, seed=3, epoch=2, shuffle=True)) == orders[2]  # same (seed, epoch) -> same order
    assert list(unit_order(5, seed=3, epoch=9, shuffle=False)) == [0, 1, 2, 3, 4]


def test_resampled_pieces_are_whole_units_weighted_by_size():
    pieces = resampled_pieces([10, 0, 30], np.random.default_rng(0))
    drawn = [next(pieces) for _ in range(2000)]
    assert all(p.start == 0 and p.stop == [10, 0, 30][p.unit] for p in drawn)
    share = np.mean([p.unit == 2 for p in drawn])
    assert 0.7 < share < 0.8 and not any(p.unit == 1 for p in drawn)


@pytest.mark.parametrize("epoch", [0, 1])
def test_first_samples_of_eval_order_are_the_manifest_order(epoch):
    split = Split(1, 0, 1, 0, 4, False)
    pieces = epoch_pieces([3, 3, 3], split, seed=0, epoch=epoch, shuffle=False, max_samples=5)
    assert [(p.unit, p.start, p.stop) for p in pieces] == [(0, 0, 3), (1, 0, 2)]
