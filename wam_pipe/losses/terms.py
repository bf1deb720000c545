"""The individual loss terms, as plain functions of tensors (no weights, no state)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from wam_pipe.core.imaging import to_unit
from wam_pipe.core.metrics import ssim


def detection_loss(det_logits: torch.Tensor, union_mask: torch.Tensor) -> torch.Tensor:
    """BCE of the detection channel `(B, H, W)` against the union of the watermark masks `(B, H, W)`."""
    return F.binary_cross_entropy_with_logits(det_logits.float(), union_mask.float())


def decoding_loss(bit_logits: torch.Tensor, msgs: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BCE of the bit logits against each message, on the pixels of that message's mask, pixel-weighted.

    Args:
        bit_logits: (B, nbits, H, W); msgs: (B, K, nbits) 0/1; masks: (B, K, H, W) 0/1.
    Returns:
        (loss, weight): the mean over all selected (pixel, bit) elements, and their count. With no watermarked
        pixel in the batch the loss is 0 (still attached to the graph) and the count 0: no NaN, no host sync.
    """
    logits = bit_logits.float()
    total = logits.new_zeros(())
    count = logits.new_zeros(())
    for k in range(msgs.shape[1]):
        target = msgs[:, k, :, None, None].float().expand_as(logits)     # (B, nbits, H, W)
        mask = masks[:, k : k + 1].float()                                # (B, 1, H, W)
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        total = total + (bce * mask).sum()
        count = count + mask.sum() * logits.shape[1]
    return total / count.clamp_min(1.0), count


_RGB_TO_YUV = ((0.299, 0.587, 0.114), (-0.14713, -0.28886, 0.436), (0.615, -0.51499, -0.10001))
_YUV_WEIGHTS = (2.0, 1.0, 1.0)


@functools.lru_cache(maxsize=None)
def _yuv_constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # Uploaded once per device: a per-call torch.tensor(..., device=cuda) would wait for the GPU every step.
    # Never as inference tensors, which cached would break a later training step (see core.imaging._stats_on).
    with torch.inference_mode(False):
        matrix = torch.tensor(_RGB_TO_YUV).to(device)
        weights = torch.tensor(_YUV_WEIGHTS).view(1, 3, 1, 1).to(device)
    return matrix, weights


def perceptual_loss(imgs: torch.Tensor, imgs_w: torch.Tensor, kind: str) -> torch.Tensor:
    """Distance between cover and watermarked images (model space `(B, 3, H, W)`), measured in [0, 1] pixels.

    kind: "mse" (pixel MSE), "yuv" (MSE in YUV, luma weighted x2 as it is the most visible), "ssim" (1 - SSIM).
    """
    a, b = to_unit(imgs.float()), to_unit(imgs_w.float())
    if kind == "mse":
        return F.mse_loss(b, a)
    if kind == "yuv":
        matrix, weights = _yuv_constants(a.device)
        diff = torch.einsum("ij,bjhw->bihw", matrix, b - a)                # (B, 3, H, W) in YUV
        return (diff.pow(2) * weights).mean()
    if kind == "ssim":
        return 1 - ssim(imgs_w, imgs).mean()
    raise ValueError(f"unknown perceptual loss kind {kind!r}; use mse, yuv or ssim")


def hinge_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator side of the hinge GAN loss: make the discriminator score watermarked images as real."""
    return -fake_logits.float().mean()


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator side of the hinge GAN loss: real (cover) images above +1, watermarked below -1."""
    return 0.5 * (F.relu(1 - real_logits.float()).mean() + F.relu(1 + fake_logits.float()).mean())
