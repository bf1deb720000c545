"""COCO-Stuff annotations (`stuff_*.json`, what the reference recipes trained on): every segmentation is an RLE
(compressed counts strings, or uncompressed count lists), one segment per stuff class present, many per image, and
together they cover the whole image. Shard build and the per-file loader read them and agree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from wam_pipe.core.context import RunContext
from wam_pipe.data.shards.build import build_shards
from wam_pipe.data.shards.build_state import BuildConfig
from wam_pipe.stages.load import Load

SIZE = 32  # samples are 32 px: the 64 px-high images below are halved exactly (nearest keeps block edges)
MAX_MASKS = 16


def _grid(height: int, width: int, rows: int, cols: int) -> list[np.ndarray]:
    """rows x cols disjoint blocks covering a height x width image, as uint8 (H, W) masks."""
    blocks = []
    for r in range(rows):
        for c in range(cols):
            block = np.zeros((height, width), dtype=np.uint8)
            block[r * height // rows:(r + 1) * height // rows, c * width // cols:(c + 1) * width // cols] = 1
            blocks.append(block)
    return blocks


def _compressed(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _uncompressed(mask: np.ndarray) -> dict:
    flat = mask.flatten(order="F")  # COCO runs go down columns, starting with a run of zeros
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0] == 1:
        runs = [0] + runs
    return {"size": list(mask.shape), "counts": [int(r) for r in runs]}


@pytest.fixture(scope="module")
def coco_stuff(tmp_path_factory) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """Two images with 16 and 12 stuff segments (compressed RLE / uncompressed RLE), and the expected stored masks
    `(n, SIZE, SIZE)` per sample key."""
    root = tmp_path_factory.mktemp("stuff")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    images, annotations, expected = [], [], {}
    layouts = [(1, 64, 64, 4, 4, _compressed), (2, 64, 96, 2, 6, _uncompressed)]
    for image_id, height, width, rows, cols, encode in layouts:
        name = f"{image_id:012d}.jpg"
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(root / "images" / name)
        images.append({"id": image_id, "file_name": name, "height": height, "width": width})
        blocks = _grid(height, width, rows, cols)
        for n, block in enumerate(blocks):
            annotations.append({"id": image_id * 100 + n, "image_id": image_id, "category_id": 92 + n,
                                "iscrowd": 0, "area": int(block.sum()), "bbox": [0, 0, 1, 1],
                                "segmentation": encode(block)})
        half = np.stack(blocks)[:, 1::2, 1::2]                     # (n, H/2, W/2): nearest halving
        left = (half.shape[2] - SIZE) // 2                          # centre crop of the long side
        expected[f"{image_id:012d}"] = half[:, :, left:left + SIZE]
    categories = [{"id": 92 + n, "name": f"stuff{n}", "supercategory": "stuff"} for n in range(16)]
    categories.append({"id": 183, "name": "other", "supercategory": "other"})
    path = root / "stuff_val2017.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return root / "images", path, expected


def _samples(load: Load) -> dict[str, np.ndarray]:
    load.setup(RunContext(run_dir=Path("."), log=lambda message: None))
    return {k: m.numpy() for b in load.epoch(0) for k, m in zip(b["keys"], b["masks"])}


def test_shards_and_per_file_loader_read_coco_stuff_rles(coco_stuff, tmp_path):
    images, annotations, expected = coco_stuff
    result = build_shards(BuildConfig(images, annotations, tmp_path / "shards", size=SIZE, samples_per_shard=2,
                                      workers=1, progress=False))
    manifest = result.manifest
    assert manifest["skipped"] == [] and manifest["totals"]["samples"] == 2
    assert manifest["totals"]["instances"] == 16 + 12
    common = {"size": SIZE, "batch_size": 2, "workers": 0, "shuffle": False, "drop_last": False,
              "mask_mode": "instances", "max_masks": MAX_MASKS}
    for load in (Load(shards=str(tmp_path / "shards"), **common),
                 Load(images=str(images), annotations=str(annotations), **common)):
        masks = _samples(load)
        assert masks.keys() == expected.keys()
        for key, want in expected.items():
            got = masks[key]                                        # (MAX_MASKS, SIZE, SIZE)
            np.testing.assert_array_equal(got[: len(want)], want)
            assert not got[len(want):].any()
            assert (got.max(axis=0) == 1).all()                    # stuff covers every pixel
    union = Load(shards=str(tmp_path / "shards"), **{**common, "mask_mode": "union", "random_subset": 0.0})
    assert all(m.shape == (1, SIZE, SIZE) and m.all() for m in _samples(union).values())
