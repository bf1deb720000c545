"""The rows of `grid.png`: a few images of the first evaluation batch, each through one mask and one setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from wam_pipe.eval.grid import Grid, Setting, batch_masks
from wam_pipe.eval.pictures import grid_tiles, save_grid_picture
from wam_pipe.core.precision import autocast_for


def showcase_choices(grid: Grid, rows: int) -> list[tuple[str, Setting]]:
    """(mask, setting) for each picture row: masks in turn, settings spread over the grid (identity avoided when
    there are others, since it shows nothing new)."""
    settings = [s for s in grid.settings if s.aug != "identity"] or grid.settings
    return [(grid.masks[i % len(grid.masks)], settings[(i * len(settings)) // max(rows, 1)]) for i in range(rows)]


@torch.no_grad()
def save_showcase(path: Path, model: Any, grid: Grid, imgs: torch.Tensor, segm: torch.Tensor, msgs: torch.Tensor,
                  fixed: dict[str, torch.Tensor], rows: int, precision: str) -> None:
    """Write `grid.png` for the first `rows` images of a batch.

    Args:
        model: a `Watermarker` in eval mode. imgs: (B, 3, S, S) model space. segm: (B, K, S, S). msgs: (B, nbits).
        fixed: the fixed evaluation masks. rows: images to show (at most B). precision: autocast mode.
    """
    rows = min(rows, imgs.shape[0])
    imgs, segm, msgs = imgs[:rows], segm[:rows], msgs[:rows]
    device, side = imgs.device, imgs.shape[-1]
    with autocast_for(device, precision):
        imgs_w = model.embed(imgs, msgs).float()  # (n, 3, S, S)
    masks = batch_masks(grid.masks, segm, fixed)
    spliced, augmented, predicted, target, captions = [], [], [], [], []
    for i, (mask_name, setting) in enumerate(showcase_choices(grid, rows)):
        mask = masks[mask_name][i : i + 1]  # (1, 1, S, S)
        one = imgs[i : i + 1] * (1 - mask) + imgs_w[i : i + 1] * mask
        aug, mask_aug = grid.apply(setting, one, mask)
        with autocast_for(device, precision):
            det = model.detect(aug)[:, :1].float()  # (1, 1, h, w)
        det = F.interpolate(det, size=(side, side), mode="bilinear", align_corners=False)  # (1, 1, S, S)
        spliced.append(one)
        augmented.append(aug)
        predicted.append((det[:, 0] > 0).float())
        target.append((mask_aug[:, 0] > 0.5).float())
        captions.append(f"{mask_name} / {setting.label}")
    tiles = grid_tiles(imgs, torch.cat(spliced), torch.cat(augmented), torch.cat(predicted), torch.cat(target))
    save_grid_picture(path, tiles, captions)
