"""Batched colour adjustments in `[0, 1]` pixel space with one factor per image.

They follow torchvision's `adjust_*` definitions (grey = ITU-R 601 luma), but take `(n, 1, 1, 1)` factor tensors so
that every image of a batch can get its own value in one kernel, on any device.
"""

from __future__ import annotations

import torch

_LUMA = (0.299, 0.587, 0.114)


def grayscale(pixels: torch.Tensor) -> torch.Tensor:
    """Luma `(B, 1, H, W)` of RGB pixels `(B, 3, H, W)`."""
    r, g, b = pixels.unbind(dim=-3)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(-3)


def adjust_brightness(pixels: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale intensities by `factor` (0 = black, 1 = unchanged)."""
    return pixels * factor


def adjust_contrast(pixels: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the image's mean grey level (0 = flat grey, 1 = unchanged)."""
    mean = grayscale(pixels).mean(dim=(-3, -2, -1), keepdim=True)  # (B, 1, 1, 1)
    return factor * pixels + (1.0 - factor) * mean


def adjust_saturation(pixels: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the grey image (0 = grey, 1 = unchanged, 2 = doubled saturation)."""
    return factor * pixels + (1.0 - factor) * grayscale(pixels)


def rgb_to_hsv(pixels: torch.Tensor) -> torch.Tensor:
    """RGB `(B, 3, H, W)` in [0, 1] -> HSV with hue in [0, 1)."""
    r, g, b = pixels.unbind(dim=-3)
    max_c, _ = pixels.max(dim=-3)
    min_c, _ = pixels.min(dim=-3)
    delta = max_c - min_c
    # Safe denominators: torch.where evaluates both branches, and a 0/0 there would poison the gradients.
    safe_delta = torch.where(delta > 0, delta, torch.ones_like(delta))
    safe_max = torch.where(max_c > 0, max_c, torch.ones_like(max_c))
    saturation = delta / safe_max
    rc, gc, bc = (max_c - r) / safe_delta, (max_c - g) / safe_delta, (max_c - b) / safe_delta
    hue = torch.where(max_c == r, bc - gc, torch.where(max_c == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.where(delta > 0, hue, torch.zeros_like(hue))
    hue = torch.remainder(hue / 6.0, 1.0)
    return torch.stack([hue, saturation, max_c], dim=-3)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """HSV `(B, 3, H, W)` (hue in [0, 1)) -> RGB in [0, 1]."""
    hue, saturation, value = hsv.unbind(dim=-3)
    # Closed form: channel n (R: 5, G: 3, B: 1) = V - V S clamp(min(k, 4 - k), 0, 1) with k = (n + 6 H) mod 6.
    # Python-scalar offsets keep this free of host->device copies.
    channels = []
    for offset in (5.0, 3.0, 1.0):
        k = torch.remainder(6.0 * hue + offset, 6.0)  # (B, H, W)
        ramp = torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)
        channels.append(value * (1.0 - saturation * ramp))
    return torch.stack(channels, dim=-3)


def adjust_hue(pixels: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by `shift` turns (in [-0.5, 0.5]; 0 = unchanged)."""
    hsv = rgb_to_hsv(pixels)
    hue = torch.remainder(hsv[:, :1] + shift, 1.0)
    return hsv_to_rgb(torch.cat([hue, hsv[:, 1:]], dim=1))
