"""Random watermark shapes: brush strokes and boxes, drawn with tensor ops on any device.

Sizes follow the reference's constants at 256 px and scale with `min(H, W) / 256`. Shape parameters are drawn on
the CPU (optionally from a `torch.Generator`) and only the drawing runs on the device.
"""

from __future__ import annotations

import math

import torch

from wam_pipe.augment._common import randint, to_device

REFERENCE_SIZE = 256
# Brush strokes (reference constants at 256 px): 1-6 strokes of 1-5 segments, 50-99 px long, 20-39 px wide,
# segment angles 0.01 + {0, 1, 2, 3} rad, mirrored on every other stroke.
STROKES = (1, 6)
SEGMENTS = (1, 5)
SEGMENT_LENGTH = (50, 99)
BRUSH_WIDTH = (20, 39)
# Boxes: sides of 30-101 px, 10 px away from the borders; the non-overlapping placer tries 100 times per box.
BOX_SIDE = (30, 101)
BOX_MARGIN = 10
PLACEMENT_ATTEMPTS = 100
_SEGMENTS_PER_PASS = 8

Box = tuple[int, int, int, int]  # (top, left, height, width) in pixels


def _scaled(pair: tuple[int, int], scale: float, minimum: int = 1) -> tuple[int, int]:
    low = max(minimum, round(pair[0] * scale))
    return low, max(low, round(pair[1] * scale))


def _int(low: int, high: int, generator: torch.Generator | None) -> int:
    return int(randint(low, high, 1, generator)[0])


def sample_strokes(height: int, width: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random brush-stroke segments `(S, 5)` (CPU float64): x0, y0, x1, y1 and the brush radius, in pixels."""
    scale = min(height, width) / REFERENCE_SIZE
    lengths, widths = _scaled(SEGMENT_LENGTH, scale), _scaled(BRUSH_WIDTH, scale)
    segments = []
    for stroke in range(_int(*STROKES, generator)):
        x, y = float(_int(0, width - 1, generator)), float(_int(0, height - 1, generator))
        for _ in range(_int(*SEGMENTS, generator)):
            angle = 0.01 + _int(0, 3, generator)
            if stroke % 2 == 0:
                angle = 2 * math.pi - angle
            length = _int(*lengths, generator)
            radius = _int(*widths, generator) / 2
            x1 = min(max(x + length * math.sin(angle), 0.0), width - 1.0)
            y1 = min(max(y + length * math.cos(angle), 0.0), height - 1.0)
            segments.append((x, y, x1, y1, radius))
            x, y = x1, y1
    return torch.tensor(segments, dtype=torch.float64)


def draw_strokes(segments: torch.Tensor, height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """Rasterize segments `(S, 5)` as round-capped brush strokes: an `(H, W)` 0/1 mask on `like`'s device.

    A pixel is painted when its distance to a segment is at most the brush radius.
    """
    painted = torch.zeros(height, width, device=like.device, dtype=torch.bool)
    if segments.shape[0] == 0:
        return painted.to(like.dtype)
    ys = torch.arange(height, device=like.device, dtype=like.dtype).view(1, height, 1)
    xs = torch.arange(width, device=like.device, dtype=like.dtype).view(1, 1, width)
    all_segments = to_device(segments, like).view(-1, 5, 1, 1)  # (S, 5, 1, 1)
    for chunk in all_segments.split(_SEGMENTS_PER_PASS):  # bounds the (S, H, W) temporaries
        x0, y0, x1, y1, radius = chunk.unbind(dim=1)  # (s, 1, 1) each
        dx, dy = x1 - x0, y1 - y0
        length_sq = (dx * dx + dy * dy).clamp_min(1e-9)
        t = (((xs - x0) * dx + (ys - y0) * dy) / length_sq).clamp(0.0, 1.0)  # (s, H, W) projection on segment
        dist_sq = (xs - x0 - t * dx) ** 2 + (ys - y0 - t * dy) ** 2
        painted = painted | (dist_sq <= radius * radius).any(dim=0)  # (H, W)
    return painted.to(like.dtype)


def sample_boxes(count: int, height: int, width: int, generator: torch.Generator | None = None) -> list[Box]:
    """`count` boxes placed independently (they may overlap), at least the margin away from the borders."""
    scale = min(height, width) / REFERENCE_SIZE
    margin = round(BOX_MARGIN * scale)
    sides = _scaled(BOX_SIDE, scale)
    boxes = []
    for _ in range(count):
        h = min(_int(*sides, generator), max(1, height - 2 * margin))
        w = min(_int(*sides, generator), max(1, width - 2 * margin))
        top = _int(min(margin, height - h), max(0, height - margin - h), generator)
        left = _int(min(margin, width - w), max(0, width - margin - w), generator)
        boxes.append((top, left, h, w))
    return boxes


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def sample_separate_boxes(count: int, height: int, width: int,
                          generator: torch.Generator | None = None) -> list[Box | None]:
    """`count` non-overlapping boxes; a box that finds no free place in 100 tries is None (an empty watermark)."""
    placed: list[Box] = []
    result: list[Box | None] = []
    for _ in range(count):
        found = None
        for _attempt in range(PLACEMENT_ATTEMPTS):
            candidate = sample_boxes(1, height, width, generator)[0]
            if not any(_overlaps(candidate, other) for other in placed):
                found = candidate
                break
        if found is not None:
            placed.append(found)
        result.append(found)
    return result


def draw_boxes(boxes: list[Box | None], height: int, width: int, like: torch.Tensor,
               separate: bool = False) -> torch.Tensor:
    """Boxes as masks on `like`'s device: `(len(boxes), H, W)` when `separate`, else their union `(1, H, W)`.

    Drawn by slicing with Python integers, so nothing is copied to the device.
    """
    channels = len(boxes) if separate else 1
    masks = torch.zeros(channels, height, width, device=like.device, dtype=like.dtype)
    for index, box in enumerate(boxes):
        if box is not None:
            top, left, h, w = box
            masks[index if separate else 0, top : top + h, left : left + w] = 1.0
    return masks
