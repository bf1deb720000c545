"""Batched projective warps of images and masks with `grid_sample`, one 3x3 matrix per sample.

Coordinates are continuous pixel coordinates: the image covers `[0, W] x [0, H]` and pixel `(i, j)` has its centre at
`(j + 0.5, i + 0.5)`, which is what `grid_sample(..., align_corners=False)` assumes. A matrix maps an **output** pixel
centre to the input point it samples. Matrices are built on the CPU in float64 from CPU-drawn parameters and copied to
the device without blocking.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from wam_pipe.augment._common import Pair, to_device


def rotation_matrices(degrees: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Output->input matrices `(n, 3, 3)` rotating the content counter-clockwise by `degrees` about the centre."""
    theta = degrees.to(torch.float64) * (math.pi / 180.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    cx, cy = width / 2.0, height / 2.0
    n = degrees.shape[0]
    mats = torch.zeros(n, 3, 3, dtype=torch.float64)
    # With y pointing down, a visual counter-clockwise turn sends p_in to p_out = [[c, s], [-s, c]] p_in about the
    # centre; sampling needs the inverse (the transpose).
    mats[:, 0, 0], mats[:, 0, 1] = cos, -sin
    mats[:, 1, 0], mats[:, 1, 1] = sin, cos
    mats[:, 0, 2] = cx - cos * cx + sin * cy
    mats[:, 1, 2] = cy - sin * cx - cos * cy
    mats[:, 2, 2] = 1.0
    return mats


def image_corners(height: int, width: int) -> torch.Tensor:
    """The four corners `(4, 2)` as (x, y): top-left, top-right, bottom-right, bottom-left."""
    return torch.tensor([[0.0, 0.0], [width, 0.0], [width, height], [0.0, height]], dtype=torch.float64)


def perspective_matrices(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Output->input homographies `(n, 3, 3)` sending the `target` corners `(n, 4, 2)` back to `source`.

    Solves the 8 unknowns of each homography from its 4 point pairs (the last entry is fixed to 1).
    """
    n = target.shape[0]
    x, y = target[..., 0], target[..., 1]  # (n, 4)
    u, v = source[..., 0], source[..., 1]  # (n, 4)
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack([x, y, ones, zeros, zeros, zeros, -x * u, -y * u], dim=-1)  # (n, 4, 8)
    rows_v = torch.stack([zeros, zeros, zeros, x, y, ones, -x * v, -y * v], dim=-1)  # (n, 4, 8)
    system = torch.cat([rows_u, rows_v], dim=1)  # (n, 8, 8)
    rhs = torch.cat([u, v], dim=1).unsqueeze(-1)  # (n, 8, 1)
    coeffs = torch.linalg.solve(system, rhs).squeeze(-1)  # (n, 8)
    return torch.cat([coeffs, torch.ones(n, 1, dtype=coeffs.dtype)], dim=1).view(n, 3, 3)


def sampling_grid(matrices: torch.Tensor, height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """The `grid_sample` grid `(n, H, W, 2)` of output->input `matrices` (CPU `(n, 3, 3)`), on `like`'s device."""
    mats = to_device(matrices, like)
    ys = torch.arange(height, device=like.device, dtype=like.dtype) + 0.5
    xs = torch.arange(width, device=like.device, dtype=like.dtype) + 0.5
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")  # (H, W) each
    points = torch.stack([grid_x, grid_y, torch.ones_like(grid_x)], dim=-1).view(1, height * width, 3)
    mapped = points @ mats.transpose(1, 2)  # (n, H*W, 3)
    xy = mapped[..., :2] / mapped[..., 2:]  # (n, H*W, 2) input pixel coordinates
    scale = torch.tensor([2.0 / width, 2.0 / height], dtype=like.dtype)
    normalized = xy * to_device(scale, like) - 1.0
    return normalized.view(-1, height, width, 2)  # (n, H, W, 2)


def warp(imgs: torch.Tensor, masks: torch.Tensor, matrices: torch.Tensor, mode: str = "bilinear") -> Pair:
    """Warp images (`mode`: bilinear or nearest) and masks (nearest) identically; outside points get 0 (the mean
    colour, no mask).

    Args:
        imgs: `(B, 3, H, W)` model-space images.
        masks: `(B, K, H, W)` float masks.
        matrices: CPU `(n, 3, 3)` output->input matrices, n = 1 (shared) or B.
    """
    batch, _, height, width = imgs.shape
    grid = sampling_grid(matrices, height, width, imgs)
    if grid.shape[0] != batch:
        grid = grid.expand(batch, -1, -1, -1)  # (B, H, W, 2)
    out = F.grid_sample(imgs, grid, mode=mode, padding_mode="zeros", align_corners=False)
    out_masks = F.grid_sample(masks, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out, out_masks
