"""Metrics on hand-made predictions with known answers."""

from __future__ import annotations

import math

import torch

from wam_pipe.core.imaging import from_unit
from wam_pipe.core.metrics import (bit_accuracy_counts, decode_message, detection_stats, message_accuracy, psnr, ssim)


def test_bit_accuracy_counts_only_masked_pixels():
    msgs = torch.tensor([[[1, 0, 1, 0]]])                                # (B=1, K=1, nbits=4)
    logits = torch.full((1, 4, 2, 2), -1.0)
    logits[0, 0] = 1.0                                                   # bit 0 right everywhere
    logits[0, 2, 0, 0] = 1.0                                             # bit 2 right at pixel (0,0) only
    masks = torch.zeros(1, 1, 2, 2)
    masks[0, 0, 0, :] = 1                                                # first row watermarked
    correct, total = bit_accuracy_counts(logits, msgs, masks)
    # row 0: pixel (0,0): bits 0,1,2,3 all right (4); pixel (0,1): bits 0,1,3 right (3) -> 7 / 8
    assert total.item() == 8 and correct.item() == 7


def test_bit_accuracy_empty_mask_gives_zero_count():
    correct, total = bit_accuracy_counts(torch.randn(2, 8, 4, 4), torch.ones(2, 1, 8), torch.zeros(2, 1, 4, 4))
    assert total.item() == 0 and correct.item() == 0


def test_detection_stats_known_values():
    target = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    logits = torch.tensor([[[2.0, -2.0], [-2.0, -2.0]]])                 # predicts only (0,0)
    stats = detection_stats(logits, target)
    assert stats["acc"].item() == 0.75
    assert math.isclose(stats["iou_1"].item(), 0.5)                       # inter 1, union 2
    assert math.isclose(stats["iou_0"].item(), 2 / 3, rel_tol=1e-6)                     # inter 2, union 3
    assert math.isclose(stats["miou"].item(), (0.5 + 2 / 3) / 2, rel_tol=1e-6)
    empty = detection_stats(torch.full((1, 2, 2), -1.0), torch.zeros(1, 2, 2))
    assert empty["iou_1"].item() == 1.0 and empty["miou"].item() == 1.0


def test_psnr_and_ssim():
    x = from_unit(torch.full((1, 3, 16, 16), 0.5))
    y = from_unit(torch.full((1, 3, 16, 16), 0.5 + 1 / 255))             # error of exactly 1 grey level
    assert math.isclose(psnr(x, y).item(), 20 * math.log10(255), rel_tol=1e-3)
    assert math.isclose(ssim(x, x).item(), 1.0, rel_tol=1e-5)
    noisy = from_unit(torch.rand(1, 3, 16, 16))
    assert ssim(x, noisy).item() < 0.5


def test_decode_message_over_predicted_mask():
    bits = torch.zeros(1, 3, 2, 2)
    bits[0, :, 0, 0] = torch.tensor([5.0, -5.0, 5.0])                    # the watermarked pixel
    bits[0, :, 1, 1] = torch.tensor([-9.0, 9.0, -9.0])                   # noise outside the predicted mask
    det = torch.tensor([[[3.0, -3.0], [-3.0, -3.0]]])
    decoded = decode_message(bits, det)
    assert decoded.tolist() == [[1.0, 0.0, 1.0]]
    bit_acc, word_acc = message_accuracy(decoded, torch.tensor([[1, 0, 0]]))
    assert math.isclose(bit_acc.item(), 2 / 3, rel_tol=1e-6) and word_acc.item() == 0.0
    # nothing predicted: falls back to all pixels instead of returning NaN
    assert torch.isfinite(decode_message(bits, torch.full((1, 2, 2), -1.0))).all()
