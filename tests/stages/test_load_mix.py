"""The load stage's weighted mixes of shard sets, and `validate`'s data checks (mix values, instance-free shards)."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from wam_pipe.config import compose
from wam_pipe.core.context import RunContext
from wam_pipe.core.errors import ConfigError, UserError
from wam_pipe.data.shards.build import build_shards
from wam_pipe.data.shards.build_state import BuildConfig
from wam_pipe.data.synth import write_synthetic_coco
from wam_pipe.stages import Load


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[str, Path]:
    """`coco`: 16 samples with instances; `photos`: 12 samples from a folder (no instances); `big`: 48 px."""
    root = tmp_path_factory.mktemp("mix")
    write_synthetic_coco(root / "images", root / "ann.json", 16, seed=3, min_size=40, max_size=80, workers=1)
    photos = root / "photos"
    photos.mkdir()
    for i in range(12):
        Image.new("RGB", (40 + i, 36), (20 * i, 100, 200 - 10 * i)).save(photos / f"p{i:02d}.png")
    out = {"coco": root / "coco", "photos": root / "photos_shards", "big": root / "big"}
    build_shards(BuildConfig(root / "images", root / "ann.json", out["coco"], size=32, samples_per_shard=4, workers=1,
                             progress=False))
    build_shards(BuildConfig(photos, None, out["photos"], size=32, samples_per_shard=4, workers=1, progress=False))
    build_shards(BuildConfig(photos, None, out["big"], size=48, samples_per_shard=4, workers=1, progress=False))
    return out


def _mix_load(sets, weights=(1.0, 3.0), **kw) -> Load:
    mix = [{"shards": str(sets["coco"]), "weight": weights[0]},
           {"shards": str(sets["photos"]), "weight": weights[1], "name": "mine"}]
    settings = {"size": 32, "batch_size": 4, "workers": 0, "shuffle_buffer": 8, "epoch_batches": 50, **kw}
    return Load(mix=mix, **settings)


def _keys(load: Load, epoch: int) -> list[str]:
    return [key for batch in load.epoch(epoch) for key in batch["keys"]]


def test_batches_are_drawn_by_weight_and_the_realized_mix_is_logged(sets):
    lines: list[str] = []
    load = _mix_load(sets)
    load.setup(RunContext(run_dir=Path("."), seed=4, log=lines.append))
    assert load.batches_per_epoch == 50
    keys = _keys(load, 0)
    assert len(keys) == 200
    counts = Counter(key.split("/")[0] for key in keys)
    assert set(counts) == {"coco", "mine"} and abs(counts["mine"] / 200 - 0.75) < 0.1
    assert load.realized_mix(0) == [("coco", counts["coco"]), ("mine", counts["mine"])]
    assert lines == [f"load: epoch 0 mix over 50 batches x 1 ranks: coco {counts['coco'] / 200:.3f} "
                     f"({counts['coco']} samples), mine {counts['mine'] / 200:.3f} ({counts['mine']} samples)"]


def test_same_seed_same_batches_and_epochs_differ(sets):
    first = _mix_load(sets, workers=2, prefetch_factor=2)
    again = _mix_load(sets, workers=2, prefetch_factor=2)  # a fresh loader, as after a restart
    first.setup(RunContext(run_dir=Path("."), seed=1, log=lambda m: None))
    again.setup(RunContext(run_dir=Path("."), seed=1, log=lambda m: None))
    keys = _keys(first, 0)
    assert len(keys) == 200 and keys == _keys(again, 0)
    assert keys != _keys(first, 1)


def test_every_rank_gets_the_configured_batch_count(sets):
    for rank in (0, 1):
        load = _mix_load(sets, epoch_batches=7)
        load.setup(RunContext(run_dir=Path("."), seed=0, rank=rank, world_size=2, log=lambda m: None))
        assert len(list(load.epoch(0))) == 7 == load.batches_per_epoch


def test_a_zero_weight_set_is_never_drawn(sets):
    load = _mix_load(sets, weights=(0.0, 1.0), epoch_batches=5)
    load.setup(RunContext(run_dir=Path("."), log=lambda m: None))
    assert {key.split("/")[0] for key in _keys(load, 0)} == {"mine"}


@pytest.mark.parametrize("weights, message", [
    ((-1.0, 1.0), "mix[0].weight: must be a number >= 0, got -1.0"),
    ((0.0, 0), "all weights are 0"),
])
def test_bad_weights_are_value_problems(sets, weights, message):
    problems = _mix_load(sets, weights=weights)._value_problems()
    assert any(message in f"{key}: {text}" for key, text in problems), problems


def test_sets_of_another_size_and_missing_epoch_batches_are_refused(sets):
    mix = [{"shards": str(sets["coco"]), "weight": 1}, {"shards": str(sets["big"]), "weight": 1}]
    problems = dict(Load(mix=mix, size=32)._value_problems())
    assert "holds 48-pixel samples but size is 32" in problems["mix[1].shards"]
    assert "a mix needs epoch_batches >= 1" in problems["epoch_batches"]
    with pytest.raises(UserError, match="give exactly one source"):
        Load(mix=mix, shards=str(sets["coco"]), epoch_batches=2).setup(RunContext(run_dir=Path(".")))


PIPELINE = """\
version: 1
name: checks
run: {{seed: 0, device: cpu, epochs: 1, eval_every: 0}}
stages:
  load:
    _target_: wam_pipe.stages.Load
    {source}
    size: 32
    batch_size: 4
    workers: 0
    mask_mode: {mask_mode}
  augment:
    _target_: wam_pipe.stages.Augment
    masks: {{_target_: wam_pipe.augment.MaskSampler, full: 0.5, box: 0.5, irregular: 0.0, segm: {segm}}}
  step:
    _target_: wam_pipe.stages.Step
    embedder: {{_target_: wam_pipe.models.ConvEmbedder, nbits: 8}}
    extractor: {{_target_: wam_pipe.models.ConvExtractor, nbits: 8, img_size: 32}}
    img_size: 32
    optimizer: {{_target_: torch.optim.AdamW, _partial_: true, lr: 1.0e-3}}
    losses: {{_target_: wam_pipe.losses.WatermarkLosses}}
"""


def _errors(tmp_path: Path, **fields) -> list[str]:
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(PIPELINE.format(**{"mask_mode": "union", "segm": 0.0, **fields})))
    try:
        compose(path)
    except ConfigError as err:
        return err.errors
    return []


def test_validate_refuses_instance_masks_on_shards_without_instances(sets, tmp_path):
    photos = f"shards: {sets['photos']}"
    assert _errors(tmp_path, source=photos) == []  # box + full masks work
    errors = _errors(tmp_path, source=photos, segm=0.25, mask_mode="instances")
    assert len(errors) == 2
    assert "stages.load.mask_mode: instances, but" in errors[0] and "carry no instances" in errors[0]
    assert "stages.augment.masks.segm: 0.25" in errors[1] and "carry no instances" in errors[1]
    mixed = (f"mix: [{{shards: {sets['coco']}, weight: 1}}, {{shards: {sets['photos']}, weight: 1}}]\n"
             "    epoch_batches: 3")
    assert any("carry no instances" in e for e in _errors(tmp_path, source=mixed, segm=0.5))
    assert _errors(tmp_path, source=f"shards: {sets['coco']}", segm=0.5) == []


def test_validate_refuses_a_bad_mix_in_one_line_each(sets, tmp_path):
    mixed = (f"mix: [{{shards: {sets['coco']}, weight: -1}}, {{shards: {sets['big']}, weight: 1}}]\n"
             "    epoch_batches: 3")
    errors = _errors(tmp_path, source=mixed)
    assert any("stages.load.mix[0].weight: must be a number >= 0, got -1" in e for e in errors), errors
    sized = f"mix: [{{shards: {sets['coco']}, weight: 1}}, {{shards: {sets['big']}, weight: 1}}]\n    epoch_batches: 3"
    assert any("stages.load.mix[1].shards" in e and "48-pixel" in e for e in _errors(tmp_path, source=sized))


def test_validate_refuses_the_eval_grids_segm_on_shards_without_instances(sets, tmp_path):
    evaluation = textwrap.indent(textwrap.dedent(f"""\
        eval:
          _target_: wam_pipe.stages.Eval
          {{masks}}
          data: {{{{_target_: wam_pipe.stages.Load, shards: {sets['photos']}, size: 32, batch_size: 4, workers: 0,
                  shuffle: false, drop_last: false, random_subset: 0.0}}}}
        """), "  ")
    photos = f"shards: {sets['photos']}"
    path = tmp_path / "p.yaml"
    for masks, expected in (("", "stages.eval.masks: includes segm (the default)"), ("masks: [full, box]", None)):
        body = PIPELINE.format(source=photos, mask_mode="union", segm=0.0) + evaluation.format(masks=masks)
        path.write_text(body)
        try:
            compose(path)
            errors = []
        except ConfigError as err:
            errors = err.errors
        assert (errors == []) if expected is None else (len(errors) == 1 and expected in errors[0]), errors
