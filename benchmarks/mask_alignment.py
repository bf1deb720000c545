"""Measure how well stored masks line up with the resized image, on real COCO (../shared/data/coco_tiny).

Reference: each instance rasterised at full resolution, area-resampled (PIL BOX on the 0/1 mask as float) to the
resized size, thresholded at 0.5, then center-cropped; that is the mask of the pixels the resized image shows as the
object. Compared: our builder's masks (PIL NEAREST, pixel centres) and torchvision's legacy tensor NEAREST
(`F.resize(..., InterpolationMode.NEAREST)`, the reference trainer's choice), with the same crop.
Reports the mean IoU per instance (instances with a non-empty reference) and the centroid offset in pixels.

Usage: .venv/bin/python benchmarks/mask_alignment.py [COCO_ROOT]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

from wam_pipe.data.coco_index import load_coco_index
from wam_pipe.data.imageops import crop_geometry, resize_crop_masks
from wam_pipe.data.shards.prepare import full_resolution_rles
from wam_pipe.data.rle import decode_rles


def area_reference(mask: np.ndarray, geometry) -> np.ndarray:
    resized = Image.fromarray(mask.astype(np.float32), mode="F").resize(
        (geometry.resized_width, geometry.resized_height), Image.BOX)
    left, top, right, bottom = geometry.crop_box
    return (np.asarray(resized)[top:bottom, left:right] >= 0.5).astype(np.uint8)


def torchvision_legacy(mask: np.ndarray, geometry) -> np.ndarray:
    tensor = torch.from_numpy(mask)[None]  # (1, H, W)
    resized = F.resize(tensor, [geometry.resized_height, geometry.resized_width], InterpolationMode.NEAREST)
    left, top, right, bottom = geometry.crop_box
    return resized[0, top:bottom, left:right].numpy()


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def main(root: Path) -> None:
    ious = {"pil_nearest (ours)": [], "torchvision legacy nearest": []}
    shifts = {name: [] for name in ious}
    for split in ("train2017", "val2017"):
        index = load_coco_index(root / "annotations" / f"instances_{split}.json")
        for record in index.images:
            rles = full_resolution_rles(record, record.annotations())
            if not rles:
                continue
            geometry = crop_geometry(record.width, record.height, 256)
            full = decode_rles(rles)  # (H, W, N)
            ours = resize_crop_masks(full, geometry)
            for i in range(full.shape[2]):
                reference = area_reference(full[:, :, i], geometry)
                if reference.sum() < 16:
                    continue
                for name, mask in (("pil_nearest (ours)", ours[:, :, i]),
                                   ("torchvision legacy nearest", torchvision_legacy(full[:, :, i], geometry))):
                    ious[name].append(iou(mask, reference))
                    if mask.any():
                        shifts[name].append(centroid(mask) - centroid(reference))
    for name in ious:
        shift = np.mean(shifts[name], axis=0)
        print(f"{name:28s} mean IoU {np.mean(ious[name]):.4f} (min {np.min(ious[name]):.3f}) over "
              f"{len(ious[name])} instances; mean centroid offset dx={shift[0]:+.3f} dy={shift[1]:+.3f} px")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared/data/coco_tiny")
