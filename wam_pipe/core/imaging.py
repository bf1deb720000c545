"""Pixel-space conventions shared by every component.

Images travel from the loader as uint8 `(B, 3, H, W)`. Models, augmentations and losses work in the reference's
"model space": float, ImageNet-normalized, `(x / 255 - mean) / std`. Value-space operations (JPEG, colour
adjustments, PSNR) go through `[0, 1]` pixel space with `to_unit` / `from_unit`.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@functools.lru_cache(maxsize=None)
def _stats_on(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    # Built once per (device, dtype): creating them per call would copy host->device and wait for the GPU.
    # Never as inference tensors (a first call under `torch.inference_mode`, e.g. `wam_pipe.load(...).embed`):
    # cached, they would later break training in the same process ("Inference tensors cannot be saved for backward").
    with torch.inference_mode(False):
        mean = torch.tensor(IMAGENET_MEAN, dtype=dtype).view(1, 3, 1, 1).to(device)
        std = torch.tensor(IMAGENET_STD, dtype=dtype).view(1, 3, 1, 1).to(device)
    return mean, std


def _stats(like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _stats_on(like.device, like.dtype)


def normalize_uint8(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 `(B, 3, H, W)` in [0, 255] -> model space `(B, 3, H, W)` in `dtype`."""
    x = images.to(dtype).div_(255.0)
    mean, std = _stats(x)
    return (x - mean) / std


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Model space -> pixel space in [0, 1] (not clamped: geometric augmentations may leave the range)."""
    mean, std = _stats(x)
    return x * std + mean


def from_unit(x: torch.Tensor) -> torch.Tensor:
    """Pixel space in [0, 1] -> model space."""
    mean, std = _stats(x)
    return (x - mean) / std


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Model space -> uint8 `(B, 3, H, W)`, rounded and clamped (for saving pictures and JPEG)."""
    return to_unit(x).clamp(0, 1).mul(255).round().to(torch.uint8)


def resize_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Masks `(B, K, H, W)` resized to `size` = (h, w) by nearest neighbour, the one mask resize of wam-pipe.

    `nearest-exact` samples each output pixel at its centre, so a mask stays aligned with an image resized to the
    same size (torch's `nearest` samples the top-left corner: a shift of up to half an input pixel). Used by the
    augmentations that resize, and for the training and eval targets at the extractor's output size (the same as
    the image size for every shipped extractor, where this is the identity).
    """
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks
    return F.interpolate(masks, size=tuple(size), mode="nearest-exact")
