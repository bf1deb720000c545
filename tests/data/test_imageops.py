from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

from wam_pipe.data.imageops import crop_geometry, resize_crop_image, resize_crop_masks, to_rgb


@pytest.mark.parametrize("width, height, size", [(640, 480, 256), (480, 640, 256), (333, 500, 256), (200, 90, 64),
                                                 (256, 256, 256), (100, 1000, 32), (90, 120, 256)])
def test_image_geometry_matches_torchvision_resize_center_crop(width, height, size):
    rng = np.random.default_rng(width * height)
    image = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    reference = transforms.CenterCrop(size)(transforms.Resize(size)(image))
    ours = resize_crop_image(image, crop_geometry(width, height, size))
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(reference))


def test_mask_resize_is_exactly_pil_nearest_then_crop():
    rng = np.random.default_rng(0)
    for _ in range(40):
        width, height = (int(v) for v in rng.integers(20, 900, 2))
        size = int(rng.choice([32, 64, 256]))
        geometry = crop_geometry(width, height, size)
        mask = (rng.random((height, width)) < 0.5).astype(np.uint8)
        pil = Image.fromarray(mask).resize((geometry.resized_width, geometry.resized_height), Image.NEAREST)
        expected = np.asarray(pil.crop(geometry.crop_box))
        np.testing.assert_array_equal(resize_crop_masks(mask[:, :, None], geometry)[:, :, 0], expected)


def test_masks_stay_aligned_where_torchvision_legacy_nearest_shifts_half_a_pixel():
    # A thin vertical stripe at full resolution: its resized centre must stay where the image's content is.
    width, height, size = 1000, 1000, 256
    geometry = crop_geometry(width, height, size)
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[:, 500:520] = 1  # centre x = 509.5 -> 509.5 * 0.256 - 0.5 + 0.5 = 130.43 in output pixel coordinates
    ours = resize_crop_masks(mask[:, :, None], geometry)[0, :, 0]
    legacy = F.resize(torch.from_numpy(mask)[None], [size, size], InterpolationMode.NEAREST)[0, 0].numpy()
    true_centre = (509.5 + 0.5) * size / width - 0.5
    ours_centre = np.nonzero(ours)[0].mean()
    legacy_centre = np.nonzero(legacy)[0].mean()
    assert abs(ours_centre - true_centre) < 0.5
    assert abs(legacy_centre - true_centre) > abs(ours_centre - true_centre)


def test_any_mode_becomes_rgb():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (8, 9, 3), dtype=np.uint8)
    grey = Image.fromarray(rgb[:, :, 0])
    assert np.array_equal(np.asarray(to_rgb(grey))[:, :, 2], rgb[:, :, 0])
    rgba = Image.fromarray(np.dstack([rgb, np.zeros((8, 9), np.uint8)]), "RGBA")
    assert np.array_equal(np.asarray(to_rgb(rgba)), rgb)  # alpha dropped, colours kept (the reference's convert)
    palette = Image.fromarray(rgb).convert("P")
    palette.info["transparency"] = 0
    assert to_rgb(palette).mode == "RGB"
    assert to_rgb(Image.fromarray(rgb).convert("CMYK")).mode == "RGB"
    sixteen = Image.fromarray((np.full((4, 4), 65535) * np.linspace(0, 1, 16).reshape(4, 4)).astype(np.uint16))
    converted = np.asarray(to_rgb(sixteen))
    assert converted.max() == 255 and converted.min() == 0  # scaled, not clipped at 255


def test_mask_alignment_on_real_coco_beats_legacy_nearest(coco_tiny):
    """Mean IoU per instance against an area-resampled (BOX, >= 0.5) reference, on part of coco_tiny."""
    from wam_pipe.data.coco_index import load_coco_index
    from wam_pipe.data.shards.prepare import full_resolution_rles
    from wam_pipe.data.rle import decode_rles

    index = load_coco_index(coco_tiny / "annotations" / "instances_val2017.json")
    ours, legacy = [], []
    for record in index.images[:12]:
        rles = full_resolution_rles(record, record.annotations())
        if not rles:
            continue
        geometry = crop_geometry(record.width, record.height, 256)
        full = decode_rles(rles)
        stored = resize_crop_masks(full, geometry)
        left, top, right, bottom = geometry.crop_box
        for i in range(full.shape[2]):
            box = Image.fromarray(full[:, :, i].astype(np.float32), "F").resize(
                (geometry.resized_width, geometry.resized_height), Image.BOX)
            reference = np.asarray(box)[top:bottom, left:right] >= 0.5
            if reference.sum() < 64:
                continue
            tv = F.resize(torch.from_numpy(full[:, :, i])[None], [geometry.resized_height, geometry.resized_width],
                          InterpolationMode.NEAREST)[0, top:bottom, left:right].numpy()
            ours.append(_iou(stored[:, :, i], reference))
            legacy.append(_iou(tv, reference))
    assert len(ours) > 20
    assert np.mean(ours) > 0.93
    assert np.mean(ours) > np.mean(legacy) + 0.02


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1))
