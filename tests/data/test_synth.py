from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from wam_pipe.data.rle import decode_rles, segmentation_to_rle
from wam_pipe.data.synth import write_synthetic_coco
from wam_pipe.core.errors import UserError


def test_dataset_has_the_promised_content(synth_coco):
    images, annotations = synth_coco
    data = json.loads(annotations.read_text())
    assert len(data["images"]) == 36 and data["info"]["seed"] == 1
    sizes = {(r["width"], r["height"]) for r in data["images"]}
    assert len(sizes) > 20 and any(w != h for w, h in sizes)
    assert all(80 <= v <= 200 for size in sizes for v in size)
    by_image = {r["id"]: [a for a in data["annotations"] if a["image_id"] == r["id"]] for r in data["images"]}
    assert sum(1 for anns in by_image.values() if not anns) == 2  # indices 7 and 23
    crowds = [a for a in data["annotations"] if a["iscrowd"]]
    assert len(crowds) == 5 and all(isinstance(a["segmentation"]["counts"], list) for a in crowds)
    polygons = [a for a in data["annotations"] if not a["iscrowd"]]
    assert {a["category_id"] for a in polygons} == {1, 2, 3}
    record = data["images"][0]
    with Image.open(images / record["file_name"]) as image:
        assert image.format == "JPEG" and image.size == (record["width"], record["height"])
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    assert pixels.std() > 10  # textured, not flat


def test_shapes_are_painted_where_their_polygons_are(synth_coco):
    images, annotations = synth_coco
    data = json.loads(annotations.read_text())
    record = data["images"][0]
    anns = [a for a in data["annotations"] if a["image_id"] == record["id"]]
    pixels = np.asarray(Image.open(images / record["file_name"]).convert("RGB"), dtype=np.float32)
    last = anns[-1]  # painted last, so not occluded
    mask = decode_rles([segmentation_to_rle(last["segmentation"], record["height"], record["width"])])[:, :, 0]
    inside = pixels[mask.astype(bool)].mean(axis=0)
    outside = pixels[~mask.astype(bool)].mean(axis=0)
    assert mask.sum() == pytest.approx(last["area"], rel=0.15)
    assert np.abs(inside - outside).max() > 5  # the shape differs from the background around it


def test_same_settings_are_a_noop_and_workers_do_not_change_bytes(tmp_path):
    assert write_synthetic_coco(tmp_path / "a" / "images", tmp_path / "a" / "ann.json", 40, seed=3, workers=1)
    assert not write_synthetic_coco(tmp_path / "a" / "images", tmp_path / "a" / "ann.json", 40, seed=3)
    assert write_synthetic_coco(tmp_path / "b" / "images", tmp_path / "b" / "ann.json", 40, seed=3, workers=2)
    assert (tmp_path / "a" / "ann.json").read_bytes() == (tmp_path / "b" / "ann.json").read_bytes()
    names = sorted(p.name for p in (tmp_path / "a" / "images").iterdir())
    assert all((tmp_path / "a" / "images" / n).read_bytes() == (tmp_path / "b" / "images" / n).read_bytes()
               for n in names)
    assert write_synthetic_coco(tmp_path / "a" / "images", tmp_path / "a" / "ann.json", 41, seed=3, workers=1)


def test_bad_settings_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="images must be >= 1"):
        write_synthetic_coco(tmp_path / "i", tmp_path / "a.json", 0)
    with pytest.raises(UserError, match="min_size <= max_size"):
        write_synthetic_coco(tmp_path / "i", tmp_path / "a.json", 3, min_size=300, max_size=200)
