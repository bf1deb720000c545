"""The `load` stage as a pipeline uses it: construction, setup, per-epoch batches, per-file source, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from wam_pipe.data.shards.build import build_shards
from wam_pipe.data.shards.build_state import BuildConfig
from wam_pipe.data.synth import write_synthetic_coco
from wam_pipe.core.errors import UserError
from wam_pipe.core.context import RunContext
from wam_pipe.stages import Load


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("load_stage")
    write_synthetic_coco(root / "images", root / "ann.json", 24, seed=2, min_size=64, max_size=160, workers=1)
    build_shards(BuildConfig(root / "images", root / "ann.json", root / "shards", size=64, samples_per_shard=3,
                             workers=1, progress=False))
    return root / "images", root / "ann.json", root / "shards"


def _ctx(**kw) -> RunContext:
    return RunContext(run_dir=Path("."), log=lambda message: None, **kw)


def test_constructor_is_cheap_and_setup_is_required():
    load = Load(shards="/does/not/exist")  # no I/O yet
    with pytest.raises(RuntimeError, match="setup"):
        load.batches_per_epoch
    with pytest.raises(UserError, match="no shard manifest"):
        load.setup(_ctx())


def test_epochs_yield_the_promised_batches(dataset):
    _, _, shards = dataset
    load = Load(shards=str(shards), size=64, batch_size=5, workers=2, prefetch_factor=2)
    load.setup(_ctx(seed=1))
    assert load.batches_per_epoch == 4 and load.num_samples == 24
    for epoch in range(2):
        batches = list(load.epoch(epoch))
        assert len(batches) == 4
        for batch in batches:
            assert batch["images"].shape == (5, 3, 64, 64) and batch["images"].dtype == torch.uint8
            assert batch["masks"].shape == (5, 1, 64, 64) and len(batch["keys"]) == 5
            assert not batch["images"].is_pinned()  # pinning only for CUDA devices


def test_per_file_source_gives_the_same_batch_shapes(dataset):
    images, annotations, _ = dataset
    load = Load(images=str(images), annotations=str(annotations), size=64, batch_size=6, workers=0,
                mask_mode="instances", max_masks=2)
    load.setup(_ctx())
    batch = next(iter(load.epoch(0)))
    assert batch["images"].shape == (6, 3, 64, 64) and batch["masks"].shape == (6, 2, 64, 64)
    assert load.batches_per_epoch == 4


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one source"),
        ({"shards": "s", "images": "i", "annotations": "a"}, "exactly one source"),
        ({"images": "i"}, "exactly one source"),
        ({"shards": "s", "batch_size": 0}, "batch_size"),
        ({"shards": "s", "mask_mode": "semantic"}, "mask_mode"),
        ({"shards": "s", "random_subset": 1.5}, "random_subset"),
        ({"shards": "s", "decoder": "opencv"}, "decoder"),
    ],
)
def test_bad_settings_are_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message):
        Load(**kwargs).setup(_ctx())


def test_batch_larger_than_the_data_is_refused(dataset):
    _, _, shards = dataset
    with pytest.raises(UserError, match="cannot fill one batch of 16 on each of 2 ranks"):
        Load(shards=str(shards), size=64, batch_size=16, workers=1).setup(_ctx(rank=0, world_size=2))


def test_shard_slice_holds_out_whole_shards(dataset):
    _, _, shards = dataset                                   # 8 shards of 3 samples
    train = Load(shards=str(shards), size=64, batch_size=3, workers=0, shuffle=False, shard_slice=[0, -2])
    held_out = Load(shards=str(shards), size=64, batch_size=3, workers=0, shuffle=False, drop_last=False,
                    shard_slice=[-2, None])
    train.setup(_ctx())
    held_out.setup(_ctx())
    assert train.num_samples == 18 and held_out.num_samples == 6
    train_keys = {k for b in train.epoch(0) for k in b["keys"]}
    held_keys = {k for b in held_out.epoch(0) for k in b["keys"]}
    assert len(held_keys) == 6 and not train_keys & held_keys
    with pytest.raises(UserError, match="selects none"):
        Load(shards=str(shards), size=64, workers=0, shard_slice=[5, 5]).setup(_ctx())


@pytest.mark.parametrize("persistent", [True, False])
def test_epochs_leave_the_global_torch_rng_alone(dataset, persistent):
    """Starting workers must not draw from the global RNG: the training step draws masks, messages and augmentations
    from it, and a resumed run (workers started once) must draw what an uninterrupted one did."""
    _, _, shards = dataset
    load = Load(shards=str(shards), size=64, batch_size=5, workers=1, prefetch_factor=2, persistent_workers=persistent)
    load.setup(_ctx(seed=1))
    draws = []
    for epoch in range(3):
        torch.manual_seed(123)
        list(load.epoch(epoch))
        draws.append(torch.rand(4))
    assert all(torch.equal(draw, draws[0]) for draw in draws)
