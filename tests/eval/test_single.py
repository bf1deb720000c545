"""Grid cell metrics on hand-made predictions whose answers are worked out by hand."""

from __future__ import annotations

import pytest
import torch

from wam_pipe.eval.accumulate import MetricTable
from wam_pipe.eval.single import GRID_METRICS, add_detection_metrics, to_prediction_size


def hand_made_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """2 images of 4x4 pixels, 4 bits.

    Image 0: watermark on the left half (8 px). Detection fires on the left half and on 2 pixels of the right half.
    Bits 0-2 are right and bit 3 wrong on every watermarked pixel; the 2 false-positive pixels have tiny logits.
    Image 1: no watermark, nothing detected.
    """
    preds = torch.full((2, 5, 4, 4), -4.0)
    target = torch.zeros(2, 1, 4, 4)
    target[0, :, :, :2] = 1
    preds[0, 0, :, :2] = 5.0
    preds[0, 0, 0, 2:] = 5.0  # 2 false positives
    msgs = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]])
    signs = torch.tensor([1.0, -1.0, 1.0, 1.0])  # bit 3 decoded as 1 but it is 0
    preds[0, 1:, :, :2] = 3.0 * signs[:, None, None]
    preds[0, 1:, 0, 2:] = 0.01  # the false positives barely move the average
    return preds, msgs, target


def test_cell_metrics_match_hand_computed_values():
    preds, msgs, target = hand_made_batch()
    table = MetricTable([{"cell": 0}], GRID_METRICS, torch.device("cpu"))
    add_detection_metrics(table, 0, preds, msgs, target)
    row = table.rows(count_metric="acc")[0]
    assert row["bit_acc"] == pytest.approx(24 / 32)          # 8 px x 3 right bits / (8 px x 4 bits)
    assert row["msg_bit_acc"] == pytest.approx(0.75)         # only image 0 carries a message: 1011 vs 1010
    assert row["word_acc"] == 0.0
    assert row["acc"] == pytest.approx((14 / 16 + 1) / 2)    # 2 wrong pixels in image 0
    assert row["iou_1"] == pytest.approx((8 / 10 + 1) / 2)   # empty union counts as 1 (reference)
    assert row["iou_0"] == pytest.approx((6 / 8 + 1) / 2)
    assert row["miou"] == pytest.approx(((0.75 + 0.8) / 2 + 1) / 2)
    assert row["psnr"] is None and row["images"] == 2        # nothing added for psnr: null, not NaN


def test_accumulating_two_halves_equals_one_batch():
    preds, msgs, target = hand_made_batch()
    whole = MetricTable([{"cell": 0}], GRID_METRICS, torch.device("cpu"))
    add_detection_metrics(whole, 0, preds, msgs, target)
    split = MetricTable([{"cell": 0}], GRID_METRICS, torch.device("cpu"))
    for i in range(2):
        add_detection_metrics(split, 0, preds[i : i + 1], msgs[i : i + 1], target[i : i + 1])
    assert split.rows("acc")[0] == pytest.approx(whole.rows("acc")[0])


def test_weighted_per_image_values_skip_unmarked_images():
    table = MetricTable([{"cell": 0}], ["psnr"], torch.device("cpu"))
    table.add_per_image(0, "psnr", torch.tensor([40.0, 148.0]), torch.tensor([1.0, 0.0]))
    table.add_per_image(0, "psnr", torch.tensor([30.0]), torch.tensor([1.0]))
    assert table.rows()[0]["psnr"] == pytest.approx(35.0) and table.rows()[0]["images"] == 2


def test_masks_are_resized_to_the_prediction_grid_as_0_1():
    masks = torch.zeros(1, 1, 8, 8)
    masks[..., :4, :] = 1
    small = to_prediction_size(masks, (4, 4))
    assert small.shape == (1, 1, 4, 4) and set(small.unique().tolist()) == {0.0, 1.0}
    assert small[..., :2, :].all() and not small[..., 2:, :].any()
