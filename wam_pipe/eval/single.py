"""The single-watermark robustness grid on one batch: embed once, then every mask x augmentation setting.

Per batch: `imgs_w = model.embed(imgs, msgs)` once; for each mask, splice `imgs * (1 - m) + imgs_w * m` (PSNR and
SSIM of that image against the cover); for each setting, augment image and mask alike, run the extractor, and add
the cell's metrics to a `MetricTable`. Everything stays on the device.
"""

from __future__ import annotations

from typing import Any

import torch

from wam_pipe.eval.accumulate import MetricTable
from wam_pipe.eval.grid import Grid, batch_masks
from wam_pipe.core.metrics import bit_accuracy_counts, decode_message, detection_stats, message_accuracy, psnr, ssim
from wam_pipe.core.precision import autocast_for
from wam_pipe.core.imaging import resize_masks

# Columns of a grid row in metrics.json (besides mask, aug, strength, images).
GRID_METRICS = ("bit_acc", "msg_bit_acc", "word_acc", "acc", "iou_0", "iou_1", "miou", "psnr", "ssim")


def grid_table(grid: Grid, device: torch.device) -> MetricTable:
    cells = [{"mask": mask, "aug": s.aug, "strength": s.strength} for mask, s in grid.cells]
    return MetricTable(cells, GRID_METRICS, device)


def to_prediction_size(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Masks `(B, K, H, W)` resized (`core.imaging.resize_masks`) to the extractor's output size, as 0/1 floats."""
    masks = resize_masks(masks.float(), size)  # (B, K, h, w)
    return (masks > 0.5).float()


def add_detection_metrics(table: MetricTable, cell: int, preds: torch.Tensor, msgs: torch.Tensor,
                          target: torch.Tensor) -> None:
    """Bit, message and detection metrics of one cell.

    Args:
        preds: (B, 1 + nbits, h, w) float logits. msgs: (B, nbits) 0/1. target: (B, 1, h, w) 0/1 watermark mask.
    """
    bits, det = preds[:, 1:], preds[:, 0]
    correct, total = bit_accuracy_counts(bits, msgs[:, None], target)
    table.add(cell, "bit_acc", correct, total)
    # A message can only be recovered from an image that still carries a watermark after the augmentation.
    carries = (target.flatten(1).amax(dim=1) > 0).float()  # (B,)
    bit_acc, word_acc = message_accuracy(decode_message(bits, det), msgs)
    table.add_per_image(cell, "msg_bit_acc", bit_acc, carries)
    table.add_per_image(cell, "word_acc", word_acc, carries)
    stats = detection_stats(det, target[:, 0])
    for name in ("acc", "iou_0", "iou_1", "miou"):
        table.add_per_image(cell, name, stats[name])


@torch.no_grad()
def evaluate_grid_batch(model: Any, grid: Grid, table: MetricTable, imgs: torch.Tensor, segm: torch.Tensor,
                        msgs: torch.Tensor, fixed: dict[str, torch.Tensor], precision: str) -> None:
    """Add one batch to `table`.

    Args:
        model: a `Watermarker` in eval mode. imgs: (B, 3, H, W) covers, model space. segm: (B, K, H, W) loader masks.
        msgs: (B, nbits) 0/1 messages. fixed: the fixed evaluation masks `(1, 1, H, W)`. precision: autocast mode.
    """
    device = imgs.device
    with autocast_for(device, precision):
        imgs_w = model.embed(imgs, msgs).float()  # (B, 3, H, W)
    masks = batch_masks(grid.masks, segm, fixed)
    cell = 0
    for mask_name in grid.masks:
        mask = masks[mask_name]  # (B, 1, H, W)
        spliced = imgs * (1 - mask) + imgs_w * mask
        # Quality is measured on images that carry a watermark: an unmarked image has infinite PSNR.
        marked = (mask.flatten(1).amax(dim=1) > 0).float()  # (B,)
        image_psnr, image_ssim = psnr(spliced, imgs), ssim(spliced, imgs)
        for setting in grid.settings:
            augmented, mask_aug = grid.apply(setting, spliced, mask)
            with autocast_for(device, precision):
                preds = model.detect(augmented).float()  # (B, 1 + nbits, h, w)
            target = to_prediction_size(mask_aug, preds.shape[-2:])  # (B, 1, h, w)
            add_detection_metrics(table, cell, preds, msgs, target)
            table.add_per_image(cell, "psnr", image_psnr, marked)
            table.add_per_image(cell, "ssim", image_ssim, marked)
            cell += 1
