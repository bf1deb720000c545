"""The per-file COCO loader: same output as the shards (the oracle test on real COCO), and its own behaviour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from wam_pipe.data.coco_index import load_coco_index
from wam_pipe.data.shards.build import build_shards
from wam_pipe.data.shards.build_state import BuildConfig
from wam_pipe.core.errors import UserError
from wam_pipe.core.context import RunContext
from wam_pipe.stages.load import Load

MAX_INSTANCES = 48  # more than any coco_tiny image has (45), so `instances` mode returns every instance


def _samples(load: Load) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    load.setup(RunContext(run_dir=Path("."), log=lambda message: None))
    return {k: (img, m) for b in load.epoch(0) for k, img, m in zip(b["keys"], b["images"], b["masks"])}


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    diff = a.numpy().astype(np.float32) - b.numpy().astype(np.float32)
    return 10 * np.log10(255.0**2 / max(float(np.mean(diff**2)), 1e-12))


@pytest.mark.parametrize("decoder", ["pil", "torchvision"])
def test_shard_masks_match_the_per_file_loader_on_real_coco(coco_tiny, tmp_path, decoder):
    images, annotations = coco_tiny / "val2017", coco_tiny / "annotations" / "instances_val2017.json"
    build_shards(BuildConfig(images, annotations, tmp_path / "shards", samples_per_shard=20, progress=False))
    common = {"batch_size": 10, "workers": 0, "shuffle": False, "drop_last": False, "mask_mode": "instances",
              "max_masks": MAX_INSTANCES, "decoder": decoder}
    from_shards = _samples(Load(shards=str(tmp_path / "shards"), **common))
    per_file = _samples(Load(images=str(images), annotations=str(annotations), **common))
    assert from_shards.keys() == per_file.keys() and len(per_file) == 80
    ious, psnrs = [], []
    for key, (image, masks) in per_file.items():
        shard_image, shard_masks = from_shards[key]
        psnrs.append(_psnr(image, shard_image))
        a = masks.numpy().reshape(MAX_INSTANCES, -1)  # (K, S*S) of 0/1
        b = shard_masks.numpy().reshape(MAX_INSTANCES, -1)
        union = np.count_nonzero(a | b, axis=1)
        inter = np.count_nonzero(a & b, axis=1)
        ious += (inter[union > 0] / union[union > 0]).tolist()  # one IoU per instance present in either
    assert len(ious) > 300
    assert np.mean(ious) >= 0.99 and min(ious) == 1.0  # same rasterisation, resize and crop: identical masks
    assert np.mean(psnrs) > 36  # measured 38.3 dB: only the JPEG q95 re-encoding differs (+-1 resize rounding too)


def test_per_file_loader_splits_ranks_like_the_shard_loader(synth_coco):
    images, annotations = synth_coco
    keys = []
    for rank in range(2):
        load = Load(images=str(images), annotations=str(annotations), size=64, batch_size=3, workers=2)
        load.setup(RunContext(run_dir=Path("."), rank=rank, world_size=2, log=lambda message: None))
        batches = list(load.epoch(1))
        assert len(batches) == load.batches_per_epoch == 6
        keys += [k for b in batches for k in b["keys"]]
    assert sorted(keys) == [f"{i:012d}" for i in range(1, 37)]


def test_missing_image_fails_naming_the_file(synth_coco, tmp_path):
    import json
    import shutil

    images, annotations = synth_coco
    shutil.copytree(images, tmp_path / "images")
    data = json.loads(annotations.read_text())
    data["images"][0]["file_name"] = "gone.jpg"
    (tmp_path / "a.json").write_text(json.dumps(data))
    load = Load(images=str(tmp_path / "images"), annotations=str(tmp_path / "a.json"), size=64, batch_size=4,
                workers=0, shuffle=False)
    load.setup(RunContext(run_dir=Path("."), log=lambda message: None))
    with pytest.raises(UserError, match=r"gone.jpg: file missing; fix the file, or build shards"):
        list(load.epoch(0))


def test_drop_unannotated_leaves_out_images_without_annotations_like_the_reference(synth_coco):
    """`load.drop_unannotated: true` (the reference's loader drops them); by default they are kept."""
    images, annotations = synth_coco
    unannotated = {r.key for r in load_coco_index(annotations).images if not r.annotations()}
    assert len(unannotated) == 2
    common = {"size": 64, "batch_size": 2, "workers": 0, "shuffle": False, "drop_last": False,
              "mask_mode": "instances", "max_masks": 8}
    kept = _samples(Load(images=str(images), annotations=str(annotations), **common))
    dropped = _samples(Load(images=str(images), annotations=str(annotations), drop_unannotated=True, **common))
    assert len(kept) == 36 and unannotated <= kept.keys()
    assert dropped.keys() == kept.keys() - unannotated
    assert all(masks.any() for _, masks in dropped.values())


def test_drop_unannotated_is_refused_for_shards(synth_shards):
    assert Load.check_config({"shards": str(synth_shards), "drop_unannotated": True}) == [
        ("drop_unannotated", "needs the per-file source (`images` + `annotations`); for shards, build them with "
                             "`wam-pipe shard build --drop-unannotated` (or `drop_unannotated: true` in the "
                             "shard-build stage)")]
    with pytest.raises(UserError, match="drop_unannotated"):
        Load(shards=str(synth_shards), drop_unannotated=True, workers=0).setup(
            RunContext(run_dir=Path("."), log=lambda message: None))


@pytest.mark.parametrize("value", [1e8, 1e308, float("nan")])
def test_out_of_range_polygon_fails_naming_the_file_instead_of_crashing(synth_coco, tmp_path, value, no_hang):
    # Issue 11 item 2: the per-file loader segfaulted (1e8, 1e308) or grew to ~24 GB (NaN) inside pycocotools.
    import json

    images, annotations = synth_coco
    data = json.loads(annotations.read_text())
    target = data["annotations"][0]
    target["segmentation"] = [[0.0, 0.0, value, 0.0, value, value]]
    (tmp_path / "a.json").write_text(json.dumps(data))
    name = next(i["file_name"] for i in data["images"] if i["id"] == target["image_id"])
    load = Load(images=str(images), annotations=str(tmp_path / "a.json"), size=64, batch_size=4, workers=0,
                shuffle=False, random_subset=0.0)
    load.setup(RunContext(run_dir=Path("."), log=lambda message: None))
    with pytest.raises(UserError, match=rf"{name}: annotation {target['id']}: polygon .*(non-finite|far outside)"):
        list(load.epoch(0))
