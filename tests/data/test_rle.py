from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from wam_pipe.data import rle as rle_ops
from wam_pipe.data.synth_shapes import uncompressed_rle


def test_polygon_matches_pycocotools_and_keeps_str_counts():
    polygon = [[10.0, 10.0, 50.0, 12.0, 45.0, 40.0, 12.0, 35.0]]
    ours = rle_ops.segmentation_to_rle(polygon, 60, 80)
    reference = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygon, 60, 80)))
    assert isinstance(ours["counts"], str) and ours["size"] == [60, 80]
    np.testing.assert_array_equal(rle_ops.decode_rles([ours])[:, :, 0], reference)
    assert rle_ops.rle_area(ours) == int(reference.sum()) > 0


def test_multi_part_polygon_is_the_union_of_its_parts():
    parts = [[2, 2, 10, 2, 10, 10, 2, 10], [20, 20, 30, 20, 30, 30, 20, 30]]
    whole = rle_ops.decode_rles([rle_ops.segmentation_to_rle(parts, 40, 40)])[:, :, 0]
    each = [rle_ops.decode_rles([rle_ops.segmentation_to_rle([p], 40, 40)])[:, :, 0] for p in parts]
    np.testing.assert_array_equal(whole, np.maximum(*each))


def test_uncompressed_and_compressed_rle_give_the_same_mask():
    mask = np.zeros((30, 40), dtype=np.uint8)
    mask[5:20, 10:35] = 1
    from_list = rle_ops.segmentation_to_rle(uncompressed_rle(mask), 30, 40)
    compressed = mask_utils.encode(np.asfortranarray(mask))
    from_bytes = rle_ops.segmentation_to_rle(compressed, 30, 40)
    from_str = rle_ops.segmentation_to_rle({"size": [30, 40], "counts": compressed["counts"].decode()}, 30, 40)
    for rle in (from_list, from_bytes, from_str):
        np.testing.assert_array_equal(rle_ops.decode_rles([rle])[:, :, 0], mask)


@pytest.mark.parametrize("segmentation", [None, [], [[1.0, 2.0, 3.0, 4.0]], [[1, 1, 5, 5]]])
def test_empty_or_degenerate_segmentations_give_empty_masks(segmentation):
    # A 4-number polygon would be read as a box by pycocotools; it is not a polygon, so it is dropped.
    rle = rle_ops.segmentation_to_rle(segmentation, 12, 9)
    assert rle["size"] == [12, 9] and rle_ops.rle_area(rle) == 0


@pytest.mark.parametrize(
    "segmentation, message",
    [
        ({"size": [10, 10], "counts": [3, 4]}, "cover 7 pixels"),
        ({"size": [11, 10], "counts": [110]}, "does not match"),
        ({"size": [10, 10], "counts": [-5, 105]}, "negative"),
        ({"size": [10, 10], "counts": "0"}, "cover"),
        ({"size": [10, 10], "counts": "oooo"}, "end inside a number"),  # 0x20 set: "more digits follow"
        ("not a segmentation", "unsupported"),
    ],
)
def test_malformed_rles_are_rejected_before_pycocotools_decodes_them(segmentation, message):
    with pytest.raises(rle_ops.SegmentationError, match=message):
        rle_ops.segmentation_to_rle(segmentation, 10, 10)


def test_counts_from_string_inverts_pycocotools_encoding():
    rng = np.random.default_rng(3)
    for _ in range(40):
        height, width = (int(v) for v in rng.integers(1, 50, 2))
        mask = (rng.random((height, width, 1)) < rng.random()).astype(np.uint8)
        rle = rle_ops.encode_masks(mask)[0]
        runs = rle_ops.counts_from_string(rle["counts"])
        assert sum(runs) == height * width
        flat = np.repeat(np.arange(len(runs)) % 2, runs).astype(np.uint8)
        np.testing.assert_array_equal(flat.reshape((width, height)).T, mask[:, :, 0])


def test_union_and_encode_round_trip():
    masks = np.zeros((16, 16, 3), dtype=np.uint8)
    masks[0:4, 0:4, 0] = 1
    masks[2:8, 2:8, 1] = 1
    rles = rle_ops.encode_masks(masks)
    np.testing.assert_array_equal(rle_ops.decode_rles(rles), masks)
    np.testing.assert_array_equal(rle_ops.decode_union(rles, 16, 16), masks.max(axis=2))
    assert rle_ops.decode_union([], 16, 16).sum() == 0


def test_the_loop_and_the_vectorised_decoders_agree_on_long_and_short_counts():
    rng = np.random.default_rng(5)
    for _ in range(30):
        side = int(rng.integers(1, 300))
        mask = (rng.random((side, side, 1)) < rng.random()).astype(np.uint8)
        counts = rle_ops.encode_masks(mask)[0]["counts"]
        loop = rle_ops._runs_by_loop(counts)
        np.testing.assert_array_equal(np.asarray(loop), rle_ops.counts_from_string(counts))  # numpy when long
        assert sum(loop) == side * side
    for bad in ("oooo", "0" * 3 + "~", "o" * 9 + "0"):
        for decode in (rle_ops._runs_by_loop, lambda c: rle_ops.counts_from_string(c * 200)):
            with pytest.raises(rle_ops.SegmentationError):
                decode(bad)


@pytest.mark.parametrize("height, width", [(1, 1), (7, 5), (64, 48), (301, 457)])
def test_sample_rles_equals_decoding_then_gathering(height, width):
    """`sample_rles` reads pixels off the runs; it must give exactly the decoded masks' pixels, including masks
    that start with foreground (a leading run of 0), empty and full masks, and repeated or unordered indices."""
    rng = np.random.default_rng(height * width)
    blobs = (rng.random((height, width, 3)) < [[[0.05, 0.5, 0.95]]]).astype(np.uint8)  # sparse, half, dense
    edge = np.zeros((height, width, 3), np.uint8)
    edge[0, 0, 0] = 1  # foreground at pixel 0: the counts start with an empty background run
    edge[:, :, 2] = 1  # full
    masks = np.concatenate([blobs, edge], axis=2)  # (H, W, 6), the second edge mask is empty
    rles = rle_ops.encode_masks(masks)
    decoded = rle_ops.decode_rles(rles)
    unordered = rng.integers(0, height, 40), np.concatenate([rng.integers(0, width, 30), [0, width - 1, 0]])
    ordered = np.sort(rng.integers(0, height, 40)), np.sort(rng.integers(0, width, 33))  # a crop's: the fast path
    for rows, cols in (unordered, ordered):
        assert np.array_equal(rle_ops.sample_rles(rles, rows, cols), decoded[rows[:, None], cols[None, :]])


def test_sample_rles_refuses_a_damaged_rle():
    good = rle_ops.encode_masks(np.ones((4, 4, 1), np.uint8))[0]
    with pytest.raises(rle_ops.SegmentationError, match="RLE runs cover"):
        rle_ops.sample_rles([good, {"size": [4, 4], "counts": "0" * 3 + "1"}], np.arange(4), np.arange(4))
