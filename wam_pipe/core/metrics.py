"""Watermarking metrics, computed on the device without host syncs.

Every function returns tensors; nothing calls `.item()`. Functions that can be undefined for a batch (bit accuracy
when no pixel is watermarked) return a (sum, count) pair instead of a NaN or a -1 placeholder, so averages over
many batches stay exact: mean = sum(sums) / sum(counts).

Conventions: logits are thresholded at 0 (probability 0.5); masks are 0/1 floats; images in model space.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from wam_pipe.core.imaging import to_unit


def bit_accuracy_counts(bit_logits: torch.Tensor, msgs: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Correct and total bit decisions on the watermarked pixels of each message.

    Args:
        bit_logits: (B, nbits, H, W) per-pixel bit logits.
        msgs: (B, K, nbits) 0/1 messages, one per watermark.
        masks: (B, K, H, W) 0/1 watermark masks (same H, W as the logits).
    Returns:
        (correct, total): scalar float tensors; total is 0 when no pixel carries a watermark.
    """
    pred_bits = (bit_logits > 0).float()                                  # (B, nbits, H, W)
    correct = pred_bits.new_zeros(())
    total = pred_bits.new_zeros(())
    for k in range(msgs.shape[1]):
        target = msgs[:, k, :, None, None].float()                        # (B, nbits, 1, 1)
        agree = (pred_bits == target).float()                             # (B, nbits, H, W)
        mask = masks[:, k : k + 1].float()                                # (B, 1, H, W)
        correct = correct + (agree * mask).sum()
        total = total + mask.sum() * bit_logits.shape[1]
    return correct, total


def detection_stats(det_logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image pixel accuracy and IoU of each class for the detection channel.

    Args:
        det_logits: (B, H, W) detection logits.
        target: (B, H, W) 0/1 union of the watermark masks.
    Returns:
        dict of (B,) tensors: acc, iou_0 (background), iou_1 (watermarked), miou = (iou_0 + iou_1) / 2.
        An empty union for a class (neither predicted nor present) counts as IoU 1, as in the reference.
    """
    pred = det_logits > 0
    truth = target > 0.5
    dims = (-2, -1)
    acc = (pred == truth).float().mean(dims)
    stats = {"acc": acc}
    for label, p, t in ((0, ~pred, ~truth), (1, pred, truth)):
        inter = (p & t).float().sum(dims)
        union = (p | t).float().sum(dims)
        stats[f"iou_{label}"] = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))
    stats["miou"] = (stats["iou_0"] + stats["iou_1"]) / 2
    return stats


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB between two model-space images `(B, 3, H, W)`, on the 0-255 scale (not clamped)."""
    mse = ((to_unit(x.float()) - to_unit(y.float())) * 255).pow(2).mean(dim=(1, 2, 3))
    return 20 * math.log10(255.0) - 10 * torch.log10(mse.clamp_min(1e-10))


def _gaussian_window(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(3, 1, size, size).contiguous()  # (3, 1, k, k), one per channel


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM `(B,)` of two model-space images, computed in [0, 1] pixel space with a Gaussian window."""
    a = to_unit(x.float()).clamp(0, 1)
    b = to_unit(y.float()).clamp(0, 1)
    w = _gaussian_window(window, sigma, a.device)
    pad = window // 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(t, [pad] * 4, mode="reflect"), w, groups=3)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    score = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return score.mean(dim=(1, 2, 3))


def decode_message(bit_logits: torch.Tensor, det_logits: torch.Tensor) -> torch.Tensor:
    """One message per image: average the bit logits over the predicted watermarked pixels, threshold at 0.

    Falls back to all pixels for an image where no pixel is predicted watermarked (so a message is always returned).

    Args:
        bit_logits: (B, nbits, H, W); det_logits: (B, H, W).
    Returns:
        (B, nbits) 0/1 float message.
    """
    weight = (det_logits > 0).float()                                     # (B, H, W)
    empty = weight.sum(dim=(1, 2), keepdim=True) == 0
    weight = torch.where(empty, torch.ones_like(weight), weight)
    weight = weight[:, None]                                              # (B, 1, H, W)
    mean_logits = (bit_logits * weight).sum(dim=(2, 3)) / weight.sum(dim=(2, 3))
    return (mean_logits > 0).float()


def message_accuracy(decoded: torch.Tensor, msgs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image bit accuracy `(B,)` and word accuracy `(B,)` (all bits right) of decoded messages `(B, nbits)`."""
    agree = (decoded == msgs.float()).float()
    return agree.mean(dim=1), agree.min(dim=1).values
