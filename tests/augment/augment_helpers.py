"""Helpers for the augmentation tests: a bright square drawn identically in an image batch and its masks.

Imported by the test modules of this folder (pytest puts the folder on sys.path).
"""

from __future__ import annotations

import torch

SQUARE_VALUE = 10.0  # model space; far above any canvas colour (<= 2.7), so a threshold at half finds the square


def square_batch(batch: int = 2, size: int = 64, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Images `(B, 3, S, S)` at 0 (the mean colour) with an off-centre bright square, and masks with the same square.

    Each image's square sits at a different place so that per-sample parameters are visible.
    """
    imgs = torch.zeros(batch, 3, size, size)
    masks = torch.zeros(batch, k, size, size)
    for i in range(batch):
        top, left = size // 6 + 2 * i, size // 2 + 3 * i
        side_h, side_w = size // 5, size // 4
        imgs[i, :, top : top + side_h, left : left + side_w] = SQUARE_VALUE
        masks[i, :, top : top + side_h, left : left + side_w] = 1.0
    return imgs, masks


def centre_of_mass(weights: torch.Tensor) -> torch.Tensor:
    """(row, col) centre of mass of each `(B, H, W)` map -> `(B, 2)`."""
    batch, height, width = weights.shape
    rows = torch.arange(height, dtype=weights.dtype).view(1, height, 1)
    cols = torch.arange(width, dtype=weights.dtype).view(1, 1, width)
    total = weights.sum(dim=(1, 2)).clamp_min(1e-9)
    return torch.stack([(weights * rows).sum(dim=(1, 2)) / total, (weights * cols).sum(dim=(1, 2)) / total], dim=1)


def image_pattern(imgs: torch.Tensor) -> torch.Tensor:
    """Where the bright square is in augmented images: `(B, H, W)` 0/1."""
    return (imgs.mean(dim=1) > SQUARE_VALUE / 2).float()

