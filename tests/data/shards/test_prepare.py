from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from wam_pipe.data.coco_index import load_coco_index
from wam_pipe.data.shards.manifest import skip_kind
from wam_pipe.data.shards.prepare import SkipImage, encode_sample, prepare_sample
from wam_pipe.data.rle import decode_rles


@pytest.fixture(scope="module")
def records(bad_inputs):
    root, ids = bad_inputs
    index = load_coco_index(root / "annotations.json")
    by_id = {r.id: r for r in index.images}
    return root / "images", {name: by_id[image_id] for name, image_id in ids.items()}


@pytest.mark.parametrize("case", ["good", "grayscale", "cmyk", "png_alpha", "palette_alpha", "crowd",
                                  "no_annotations"])
def test_usable_inputs_become_rgb_samples_of_the_stored_size(records, case):
    images, by_name = records
    sample = prepare_sample(images, by_name[case], 64)
    assert sample.image.mode == "RGB" and sample.image.size == (64, 64)
    encoded = encode_sample(sample, "jpeg", 90)
    assert set(encoded) == {"__key__", "jpg", "json"} and encoded["__key__"] == f"{by_name[case].id:012d}"
    assert Image.open(io.BytesIO(encoded["jpg"])).size == (64, 64)
    meta = json.loads(encoded["json"])
    assert {k: meta[k] for k in ("height", "width", "orig_width", "orig_height")} == {
        "height": 64, "width": 64, "orig_width": by_name[case].width, "orig_height": by_name[case].height}
    for ann in meta["annotations"]:
        assert set(ann) == {"id", "category_id", "iscrowd", "area", "segmentation"}
        assert ann["segmentation"]["size"] == [64, 64] and isinstance(ann["segmentation"]["counts"], str)
        assert ann["area"] == int(decode_rles([ann["segmentation"]]).sum())


def test_image_without_annotations_keeps_an_empty_list(records):
    images, by_name = records
    assert prepare_sample(images, by_name["no_annotations"], 64).annotations == []


def test_crowd_rle_is_resized_with_the_image(records):
    images, by_name = records
    sample = prepare_sample(images, by_name["crowd"], 90)  # 120x90 -> 120x90 (short side already 90), crop 90x90
    crowd = [a for a in sample.annotations if a["iscrowd"] == 1]
    assert len(crowd) == 1
    mask = decode_rles([crowd[0]["segmentation"]])[:, :, 0]
    # The crowd covered rows 10..39 and columns 60..99; the center crop starts at column 15.
    assert mask[10:40, 45:85].all() and mask.sum() == 30 * 40


@pytest.mark.parametrize(
    "case, kind, reason",
    [("corrupt", "corrupt", "corrupt or truncated"), ("truncated", "corrupt", "corrupt or truncated"),
     ("missing", "missing", "file missing"), ("bomb", "bomb", "decompression bomb"),
     ("size_mismatch", "size", "but the JSON says 100x90"), ("bad_rle", "annotation", "annotation")],
)
def test_unusable_inputs_are_skipped_with_a_kind_and_a_reason(records, case, kind, reason):
    images, by_name = records
    with pytest.raises(SkipImage) as skip:
        prepare_sample(images, by_name[case], 64)
    assert skip.value.kind == kind and skip_kind({"reason": skip.value.reason}) == kind  # old manifests: inferred
    assert reason in skip.value.reason and "\n" not in skip.value.reason


def test_png_storage_is_lossless(records):
    images, by_name = records
    sample = prepare_sample(images, by_name["good"], 64)
    stored = Image.open(io.BytesIO(encode_sample(sample, "png", 95)["png"]))
    np.testing.assert_array_equal(np.asarray(stored), np.asarray(sample.image))
