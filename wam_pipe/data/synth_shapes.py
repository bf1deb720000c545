"""Drawing for the synthetic COCO generator: textured backgrounds, shapes whose outlines are the instance polygons,
and crowd blobs stored as uncompressed RLE."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw

SHAPE_CATEGORIES = [
    {"id": 1, "name": "ellipse", "supercategory": "shape"},
    {"id": 2, "name": "polygon", "supercategory": "shape"},
    {"id": 3, "name": "rectangle", "supercategory": "shape"},
    {"id": 4, "name": "blob-crowd", "supercategory": "shape"},
]


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int, channels: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a coarse random grid upsampled bicubically."""
    coarse = rng.uniform(0, 255, (max(2, height // cell), max(2, width // cell), channels)).astype(np.uint8)
    planes = [np.asarray(Image.fromarray(coarse[..., c]).resize((width, height), Image.BICUBIC), dtype=np.float32)
              for c in range(channels)]
    return np.stack(planes, axis=-1) / 127.5 - 1.0  # (H, W, C)


def _gradient(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A linear blend between two random colours along a random direction, `(H, W, 3)` float."""
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    t = xs * np.cos(angle) + ys * np.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    first, second = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
    return first * (1 - t[..., None]) + second * t[..., None]


def textured_fill(rng: np.random.Generator, height: int, width: int, grain: float) -> np.ndarray:
    """Gradient + smooth noise + fine grain: natural-ish texture, `(H, W, 3)` float in [0, 255]."""
    texture = _gradient(rng, height, width)
    cell = int(rng.integers(12, 48))
    texture += 26 * _smooth_noise(rng, height, width, cell, 1)  # luminance: shared by the channels
    texture += 8 * _smooth_noise(rng, height, width, cell * 2, 3)  # a little colour variation
    texture += rng.normal(0, grain, (height, width, 3))
    return np.clip(texture, 0, 255)


def _ellipse(rng: np.random.Generator, cx: float, cy: float, radius: float) -> np.ndarray:
    theta = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    rx, ry, tilt = radius, radius * rng.uniform(0.4, 1.0), rng.uniform(0, np.pi)
    x, y = rx * np.cos(theta), ry * np.sin(theta)
    return np.stack([cx + x * np.cos(tilt) - y * np.sin(tilt), cy + x * np.sin(tilt) + y * np.cos(tilt)], axis=1)


def _star_polygon(rng: np.random.Generator, cx: float, cy: float, radius: float) -> np.ndarray:
    count = int(rng.integers(5, 10))
    theta = np.sort(rng.uniform(0, 2 * np.pi, count))
    radii = radius * rng.uniform(0.45, 1.0, count)
    return np.stack([cx + radii * np.cos(theta), cy + radii * np.sin(theta)], axis=1)


def _rectangle(rng: np.random.Generator, cx: float, cy: float, radius: float) -> np.ndarray:
    half_w, half_h = radius, radius * rng.uniform(0.35, 1.0)
    tilt = 0.0 if rng.random() < 0.4 else rng.uniform(0, np.pi)
    corners = np.array([[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]])
    rotation = np.array([[np.cos(tilt), -np.sin(tilt)], [np.sin(tilt), np.cos(tilt)]])
    return corners @ rotation.T + [cx, cy]


SHAPE_MAKERS = {1: _ellipse, 2: _star_polygon, 3: _rectangle}


def random_shape(rng: np.random.Generator, width: int, height: int) -> tuple[int, np.ndarray]:
    """A category id and its outline `(N, 2)` of (x, y) vertices, clipped to the image."""
    category = int(rng.integers(1, 4))
    radius = rng.uniform(0.08, 0.3) * min(width, height)
    cx, cy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
    outline = SHAPE_MAKERS[category](rng, cx, cy, radius)
    outline[:, 0] = np.clip(outline[:, 0], 0, width - 1)
    outline[:, 1] = np.clip(outline[:, 1], 0, height - 1)
    return category, outline


def polygon_mask(outline: np.ndarray, width: int, height: int) -> np.ndarray:
    """Fill an outline into a uint8 `(H, W)` 0/1 mask (for painting; the JSON keeps the polygon)."""
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in outline], fill=1)
    return np.asarray(canvas, dtype=np.uint8)


def crowd_mask(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A cluster of small blobs (a 'crowd'), uint8 `(H, W)` 0/1."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    cx, cy = rng.uniform(0.25, 0.75) * width, rng.uniform(0.25, 0.75) * height
    spread = 0.15 * min(width, height)
    for _ in range(int(rng.integers(6, 14))):
        x, y = cx + rng.normal(0, spread), cy + rng.normal(0, spread)
        r = rng.uniform(0.015, 0.04) * min(width, height)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=1)
    return np.asarray(canvas, dtype=np.uint8)


def uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """A 0/1 mask -> COCO's uncompressed RLE (column-major runs, first a run of zeros), as COCO stores crowds."""
    flat = mask.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        runs = [0] + runs
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(r) for r in runs]}


def paint(canvas: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> None:
    """Paint a textured, softly shaded fill into `canvas` `(H, W, 3)` float where `mask` is 1 (in place).

    Only the mask's bounding box is textured: a full-image texture per shape made generation 3x slower.
    """
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    height, width = int(bottom - top), int(right - left)
    fill = textured_fill(rng, height, width, grain=rng.uniform(2, 7))
    shade = 1.0 + 0.25 * _smooth_noise(rng, height, width, 32, 1)
    region = mask[top:bottom, left:right].astype(bool)
    window = canvas[top:bottom, left:right]
    window[region] = np.clip(fill[region] * shade[region], 0, 255)
