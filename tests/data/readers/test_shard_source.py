"""The shard loader through real DataLoader workers: splitting, epochs, masks, reproducibility, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from wam_pipe.core.context import RunContext
from wam_pipe.stages.load import Load
from wam_pipe.core.errors import UserError


def _ctx(rank: int = 0, world: int = 1, seed: int = 5) -> RunContext:
    return RunContext(run_dir=Path("."), seed=seed, rank=rank, world_size=world, log=lambda message: None)


def _loader(shards: Path, rank=0, world=1, seed=5, **kw) -> Load:
    settings = {"size": 64, "batch_size": 4, "workers": 0, "shuffle_buffer": 8, **kw}
    load = Load(shards=str(shards), **settings)
    load.setup(_ctx(rank, world, seed))
    return load


def _epoch_keys(loads: list[Load], epoch: int) -> tuple[list[list[str]], list[int]]:
    keys, counts = [], []
    for load in loads:
        batches = list(load.epoch(epoch))
        counts.append(len(batches))
        assert len(batches) == load.batches_per_epoch
        keys.append([k for b in batches for k in b["keys"]])
    return keys, counts


def test_two_ranks_two_workers_see_every_sample_once_per_epoch(synth_shards):
    # 36 samples = 2 ranks x 18; batch 3 divides 18, so with drop_last nothing is dropped.
    loads = [_loader(synth_shards, rank, 2, batch_size=3, workers=2, persistent_workers=True) for rank in range(2)]
    for epoch in range(2):
        keys, counts = _epoch_keys(loads, epoch)
        assert counts == [6, 6]
        everything = keys[0] + keys[1]
        assert sorted(everything) == [f"{i:012d}" for i in range(1, 37)]


def test_uneven_split_drops_only_the_remainder_and_keeps_batch_counts_equal(synth_shards):
    loads = [_loader(synth_shards, rank, 2, batch_size=5, workers=2) for rank in range(2)]
    keys, counts = _epoch_keys(loads, 0)
    assert counts == [3, 3]  # 18 per rank -> 3 full batches of 5
    everything = keys[0] + keys[1]
    assert len(everything) == len(set(everything)) == 30


def test_eval_mode_reads_each_sample_once_with_uneven_batch_counts(synth_shards):
    loads = [_loader(synth_shards, rank, 3, batch_size=5, workers=2, drop_last=False, shuffle=False,
                     max_samples=29) for rank in range(3)]
    keys, counts = _epoch_keys(loads, 0)
    assert sorted(k for rank_keys in keys for k in rank_keys) == [f"{i:012d}" for i in range(1, 30)]
    assert counts == [2, 2, 2] and [len(k) for k in keys] == [10, 10, 9]


def test_shard_order_and_sample_order_change_between_epochs(synth_shards):
    load = _loader(synth_shards, shuffle_buffer=0)  # no buffer: the order is the shard order
    epochs = [[k for b in load.epoch(e) for k in b["keys"]] for e in range(3)]
    first_shard_of = [int(keys[0]) // 4 for keys in epochs]  # 4 samples per shard, ids from 1
    assert len({tuple(keys) for keys in epochs}) == 3
    assert len(set(first_shard_of)) > 1
    assert all(sorted(keys) == sorted(epochs[0]) for keys in epochs)


def test_same_seed_same_batches_and_masks(synth_shards):
    first = list(_loader(synth_shards, seed=9, workers=2).epoch(3))
    second = list(_loader(synth_shards, seed=9, workers=2).epoch(3))
    other = list(_loader(synth_shards, seed=10, workers=2).epoch(3))
    assert [b["keys"] for b in first] == [b["keys"] for b in second]
    assert all(torch.equal(a["masks"], b["masks"]) for a, b in zip(first, second))
    assert [b["keys"] for b in first] != [b["keys"] for b in other]


def test_batch_contract_union_and_instances(synth_shards):
    union = next(iter(_loader(synth_shards).epoch(0)))
    assert union["images"].shape == (4, 3, 64, 64) and union["images"].dtype == torch.uint8
    assert union["masks"].shape == (4, 1, 64, 64) and union["masks"].dtype == torch.uint8
    assert set(union["masks"].unique().tolist()) <= {0, 1} and len(union["keys"]) == 4
    instances = next(iter(_loader(synth_shards, mask_mode="instances", max_masks=3, channels_last=False).epoch(0)))
    assert instances["masks"].shape == (4, 3, 64, 64) and instances["images"].is_contiguous()


def test_union_without_subsets_is_the_union_of_all_stored_instances(synth_shards):
    from wam_pipe.data.rle import decode_union
    from wam_pipe.data.shards.tar_io import read_samples

    stored = {}
    for shard in synth_shards.glob("shard-*.tar"):
        for sample in read_samples(shard):
            rles = [a["segmentation"] for a in json.loads(sample.meta)["annotations"]]
            stored[sample.key] = torch.from_numpy(decode_union(rles, 64, 64).copy())
    load = _loader(synth_shards, random_subset=0.0, batch_size=6)
    empty = 0
    for batch in load.epoch(0):
        for key, mask in zip(batch["keys"], batch["masks"]):
            assert torch.equal(mask[0], stored[key])
            empty += int(mask.sum() == 0)
    assert empty >= 2  # images without annotations are kept, with all-zero masks


def test_random_subsets_pick_fewer_instances_sometimes(synth_shards):
    full = {k: m for b in _loader(synth_shards, random_subset=0.0).epoch(0) for k, m in zip(b["keys"], b["masks"])}
    partial = {k: m for b in _loader(synth_shards, random_subset=1.0).epoch(0) for k, m in zip(b["keys"], b["masks"])}
    smaller = sum(int(partial[k].sum() < full[k].sum()) for k in partial)
    assert smaller > 3
    assert all(bool((partial[k] <= full[k]).all()) for k in partial)  # a subset's union lies inside the full union


def test_resampled_epochs_have_the_planned_length(synth_shards):
    load = _loader(synth_shards, resampled=True, workers=2)
    assert load.batches_per_epoch == 9
    assert len(list(load.epoch(0))) == 9


def test_too_few_shards_for_ranks_and_workers_fails_with_the_number_needed(synth_shards):
    with pytest.raises(UserError, match=r"9 shards for 2 ranks x 8 workers; at least 16 are needed"):
        _loader(synth_shards, 0, 2, workers=8)


def test_size_mismatch_and_missing_shards_are_user_errors(synth_shards, tmp_path):
    with pytest.raises(UserError, match="holds 64-pixel samples"):
        _loader(synth_shards, size=256)
    copy = tmp_path / "copy"
    shutil.copytree(synth_shards, copy)
    (copy / "shard-000003.tar").unlink()
    with pytest.raises(UserError, match="shard-000003.tar: shard listed in the manifest is missing"):
        _loader(copy)


def test_damaged_shard_in_a_worker_gives_a_one_line_error(synth_shards, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(synth_shards, copy)
    path = copy / "shard-000002.tar"
    data = bytearray(path.read_bytes())
    data[600:700] = bytes(100)  # inside the first image: its header survives, the JPEG does not
    path.write_bytes(bytes(data))
    load = _loader(copy, workers=2, shuffle=False)
    with pytest.raises(UserError) as err:
        list(load.epoch(0))
    assert len(err.value.lines) == 1 and "shard-000002.tar" in str(err.value) and "Traceback" not in str(err.value)


def _first_sample_with_instances(path: Path):
    from wam_pipe.data.shards.tar_io import read_samples

    return next(s for s in read_samples(path) if len(json.loads(s.meta)["annotations"]) >= 1)


def test_damaged_rle_fails_naming_shard_and_sample_instead_of_hanging(synth_shards, tmp_path, no_hang):
    # Issue 11 item 1: a same-length counts string whose runs do not tile the mask made pycocotools' merge loop
    # forever at 100% CPU. It is now checked before pycocotools sees it.
    copy = tmp_path / "copy"
    shutil.copytree(synth_shards, copy)
    path = copy / "shard-000002.tar"
    sample = _first_sample_with_instances(path)
    counts = json.loads(sample.meta)["annotations"][0]["segmentation"]["counts"]
    damaged = "0" * (len(counts) - 1) + "1"
    data = path.read_bytes()
    assert data.count(counts.encode()) >= 1
    path.write_bytes(data.replace(counts.encode(), damaged.encode(), 1))  # same length: the manifest's bytes hold
    load = _loader(copy, workers=2, shuffle=False, random_subset=0.0)
    with pytest.raises(UserError) as err:
        list(load.epoch(0))
    message = str(err.value)
    assert len(err.value.lines) == 1 and "shard-000002.tar" in message and f"sample {sample.key}" in message
    assert "RLE runs cover" in message and "Traceback" not in message


def test_manifest_overstating_a_shard_fails_naming_it(synth_shards, tmp_path):
    # Issue 11 item 5: a rank whose shard yields fewer samples than the manifest promises would run fewer steps than
    # the others (one process: silently; DDP: a collective mismatch). Each piece's yield is counted.
    copy = tmp_path / "copy"
    shutil.copytree(synth_shards, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["shards"][3]["samples"] += 1
    manifest["totals"]["samples"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    load = _loader(copy, workers=0, shuffle=False)
    with pytest.raises(UserError, match=r"shard-000003.tar: the manifest records 5 samples but the shard ends after 4"):
        list(load.epoch(0))
