"""Blur filters: Gaussian blur (batched, one kernel per image) and median filter (straight-through gradient).

Both work in `[0, 1]` pixel space with reflect padding (replicate when the image is smaller than the kernel).
Kernel sizes are odd; training draws them uniformly among the odd sizes of the configured range.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wam_pipe.augment._common import InvalidSetting, check_range, randint, to_device
from wam_pipe.augment.base import Params, ValuemetricAugmentation, require_strength
from wam_pipe.augment.registry import register_augmentation

# Largest unfolded median block, in elements (64 MiB of float32): bounds memory for 17x17 kernels on big batches.
_MEDIAN_BLOCK_ELEMENTS = 1 << 24


def _odd_range(owner: str, kernel_size: list[int]) -> tuple[int, int]:
    low, high = check_range(owner, "kernel_size", kernel_size, low=1)
    low_odd, high_odd = int(low) | 1, int(high) - (1 - int(high) % 2)
    if low_odd > high_odd:
        raise InvalidSetting(owner, "kernel_size", f"[{low:g}, {high:g}] contains no odd size")
    return low_odd, high_odd


def _draw_odd(low: int, high: int, n: int) -> torch.Tensor:
    return low + 2 * randint(0, (high - low) // 2, n)


def _fixed_odd(owner: str, strength: float | None) -> torch.Tensor:
    size = int(round(require_strength(owner, strength)))
    if size < 1 or size % 2 == 0:
        raise ValueError(f"{owner}.apply: kernel size must be a positive odd number, got {size}")
    return torch.tensor([size])


def _pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    mode = "reflect" if pad < min(x.shape[-2:]) else "replicate"
    return F.pad(x, (pad, pad, pad, pad), mode=mode)


def gaussian_kernels(sizes: list[int], width: int) -> torch.Tensor:
    """1-D Gaussian kernels `(n, width)` (CPU float64), each centred and zero-padded to the common odd `width`.

    sigma = 0.3 * ((k - 1) / 2 - 1) + 0.8 for size k, torchvision's default.
    """
    kernels = torch.zeros(len(sizes), width, dtype=torch.float64)
    for row, size in enumerate(sizes):
        sigma = 0.3 * ((size - 1) / 2 - 1) + 0.8
        x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
        weights = torch.exp(-0.5 * (x / sigma) ** 2)
        start = (width - size) // 2
        kernels[row, start : start + size] = weights / weights.sum()
    return kernels


def gaussian_blur(pixels: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Separable Gaussian blur of `(B, C, H, W)` with one kernel size for all, or one per image."""
    batch, channels, height, width = pixels.shape
    kmax = max(sizes)
    per_image = sizes if len(sizes) == batch else sizes[:1] * batch
    kernels = gaussian_kernels(per_image, kmax).repeat_interleave(channels, dim=0)  # (B*C, kmax)
    weight = to_device(kernels, pixels)
    # One depthwise convolution with a kernel per (image, channel) group: on CPU this layout is also several times
    # faster than a batch of 3-group convolutions.
    groups = batch * channels
    x = _pad(pixels.reshape(1, groups, height, width), kmax // 2)
    x = F.conv2d(x, weight.view(groups, 1, kmax, 1), groups=groups)
    x = F.conv2d(x, weight.view(groups, 1, 1, kmax), groups=groups)
    return x.reshape(batch, channels, height, width)


def median_filter(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """Median over `size x size` windows of `(B, C, H, W)`, computed in row strips to bound memory."""
    if size == 1:
        return pixels
    batch, channels, height, width = pixels.shape
    padded = _pad(pixels, size // 2)
    rows_per_block = max(1, _MEDIAN_BLOCK_ELEMENTS // (batch * channels * width * size * size))
    strips = []
    for top in range(0, height, rows_per_block):
        rows = min(rows_per_block, height - top)
        block = padded[:, :, top : top + rows + size - 1, :]
        windows = block.unfold(2, size, 1).unfold(3, size, 1)  # (B, C, rows, W, size, size)
        strips.append(windows.reshape(batch, channels, rows, width, size * size).median(dim=-1).values)
    return torch.cat(strips, dim=2)  # (B, C, H, W)


class _KernelFilter(ValuemetricAugmentation):
    """A filter whose strength is an odd kernel size: drawn uniformly among the odd sizes of the training range."""

    def __init__(self, weight: float, kernel_size: list[int]) -> None:
        super().__init__(weight)
        self.kernel_size = _odd_range(self.name, kernel_size)

    def sample_params(self, n: int, batch: int, height: int, width: int) -> Params:
        return {"size": _draw_odd(*self.kernel_size, n)}

    def fixed_params(self, strength: float | None, batch: int, height: int, width: int) -> Params:
        return {"size": _fixed_odd(self.name, strength)}


@register_augmentation("gaussian_blur", eval_strengths=(3, 5, 9, 17))
class GaussianBlur(_KernelFilter):
    """Gaussian blur. `strength` = the odd kernel size (sigma follows from it as in torchvision).

    Args:
        weight: relative probability of being picked (default 1.0).
        kernel_size: `[min, max]` training range; odd sizes in it are drawn uniformly (default [3, 17]).
    """

    def __init__(self, weight: float = 1.0, kernel_size: list[int] = (3, 17)) -> None:
        super().__init__(weight, kernel_size)

    def adjust(self, pixels: torch.Tensor, params: Params) -> torch.Tensor:
        return gaussian_blur(pixels, [int(k) for k in params["size"]])


@register_augmentation("median_filter", eval_strengths=(3, 5, 9, 17))
class MedianFilter(_KernelFilter):
    """Median filter; the gradient passes straight through. `strength` = the odd kernel size.

    Args:
        weight: relative probability of being picked (default 1.0).
        kernel_size: `[min, max]` training range; odd sizes in it are drawn uniformly (default [3, 7]).
    """

    straight_through = True

    def __init__(self, weight: float = 1.0, kernel_size: list[int] = (3, 7)) -> None:
        super().__init__(weight, kernel_size)

    def adjust(self, pixels: torch.Tensor, params: Params) -> torch.Tensor:
        sizes = [int(k) for k in params["size"]]
        if len(sizes) == 1:
            return median_filter(pixels, sizes[0])
        return torch.cat([median_filter(pixels[i : i + 1], k) for i, k in enumerate(sizes)])
