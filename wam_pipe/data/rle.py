"""COCO run-length encoding helpers built on `pycocotools.mask`.

Every instance, whatever its COCO form (polygons, uncompressed RLE with a list of counts, compressed RLE), is turned
into a compressed RLE `{"size": [h, w], "counts": str}`; strings rather than bytes so that the RLE is plain JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils


class SegmentationError(ValueError):
    """An annotation's `segmentation` cannot be rasterised (wrong size, malformed counts, ...)."""


def _as_str_counts(rle: dict[str, Any]) -> dict[str, Any]:
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": counts}


def empty_rle(height: int, width: int) -> dict[str, Any]:
    """The compressed RLE of an all-zero `height` x `width` mask."""
    return encode_masks(np.zeros((height, width, 1), dtype=np.uint8))[0]


def segmentation_to_rle(segmentation: Any, height: int, width: int) -> dict[str, Any]:
    """Rasterise one COCO `segmentation` at the image's full resolution, as a compressed RLE.

    Args:
        segmentation: a list of polygons `[[x1, y1, x2, y2, ...], ...]`, an uncompressed RLE
            `{"size": [h, w], "counts": [int, ...]}` or a compressed RLE (`counts` str or bytes). `None` or an empty
            list gives an empty mask.
        height / width: the image size the annotation refers to.

    Raises:
        SegmentationError: the RLE's size differs from the image's, or the data is malformed.
    """
    if segmentation is None or (isinstance(segmentation, list) and not segmentation):
        return empty_rle(height, width)
    try:
        if isinstance(segmentation, list):
            return _polygons_to_rle(segmentation, height, width)
        if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
            size = [int(v) for v in segmentation["size"]]
            if size != [height, width]:
                raise SegmentationError(f"RLE size {size} does not match the image's {[height, width]}")
            counts = segmentation["counts"]
            if isinstance(counts, list):
                check_counts_total([int(c) for c in counts], height, width)
                return _as_str_counts(mask_utils.frPyObjects(segmentation, height, width))
            rle = _as_str_counts(segmentation)
            check_counts_total(counts_from_string(rle["counts"]), height, width)
            return rle
    except SegmentationError:
        raise
    except Exception as err:  # pycocotools raises TypeError/ValueError/IndexError on malformed data
        raise SegmentationError(f"malformed segmentation ({type(err).__name__}: {err})") from None
    raise SegmentationError(f"unsupported segmentation of type {type(segmentation).__name__}")


def counts_from_string(counts: str) -> list[int]:
    """Expand COCO's compressed counts string (pycocotools' `rleFrString` format) to run lengths.

    pycocotools decodes without checking that the runs fit the mask, so untrusted RLEs are expanded and checked here
    first.

    Raises:
        SegmentationError: the string ends inside a number.
    """
    runs: list[int] = []
    pos = 0
    while pos < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(counts):
                raise SegmentationError("compressed RLE counts end inside a number")
            code = ord(counts[pos]) - 48
            value |= (code & 0x1F) << shift
            more = bool(code & 0x20)
            pos += 1
            shift += 5
            if not more and code & 0x10:
                value |= -1 << shift  # sign-extend
        if len(runs) > 2:
            value += runs[-2]  # runs after the second are stored as differences
        runs.append(value)
    return runs


def check_counts_total(runs: list[int], height: int, width: int) -> None:
    """Raise `SegmentationError` unless the runs are non-negative and cover exactly `height` x `width` pixels."""
    if any(run < 0 for run in runs):
        raise SegmentationError("RLE has a negative run length")
    if sum(runs) != height * width:
        raise SegmentationError(f"RLE runs cover {sum(runs)} pixels, not {height}x{width}={height * width}")


def _polygons_to_rle(polygons: list, height: int, width: int) -> dict[str, Any]:
    # pycocotools reads a list whose first entry has exactly 4 numbers as boxes, and rejects polygons with fewer than
    # 3 points, so keep only real polygons (>= 6 coordinates, even count).
    cleaned = []
    for poly in polygons:
        if not isinstance(poly, (list, tuple)):
            raise SegmentationError("polygon list holds a non-list entry")
        coords = [float(v) for v in poly[: len(poly) // 2 * 2]]
        if len(coords) >= 6:
            cleaned.append(coords)
    if not cleaned:
        return empty_rle(height, width)
    rles = mask_utils.frPyObjects(cleaned, height, width)
    return _as_str_counts(mask_utils.merge(rles) if len(rles) > 1 else rles[0])


def decode_rles(rles: list[dict[str, Any]]) -> np.ndarray:
    """Decode RLEs of one size to a uint8 `(H, W, N)` array (Fortran order, as pycocotools returns it)."""
    return mask_utils.decode(list(rles))


def union_rle(rles: list[dict[str, Any]]) -> dict[str, Any]:
    """The union of several RLEs of one size, still run-length encoded (cheaper than decoding each)."""
    if len(rles) == 1:
        return rles[0]
    return mask_utils.merge(list(rles), intersect=False)


def decode_union(rles: list[dict[str, Any]], height: int, width: int) -> np.ndarray:
    """Decode the union of `rles` to a uint8 `(H, W)` array; all zeros when `rles` is empty."""
    if not rles:
        return np.zeros((height, width), dtype=np.uint8)
    return mask_utils.decode(union_rle(rles))


def encode_masks(masks: np.ndarray) -> list[dict[str, Any]]:
    """Encode a uint8 `(H, W, N)` stack of 0/1 masks as N compressed RLEs with str counts."""
    fortran = np.asfortranarray(masks, dtype=np.uint8)
    return [_as_str_counts(rle) for rle in mask_utils.encode(fortran)]


def rle_area(rle: dict[str, Any]) -> int:
    """Number of foreground pixels of a compressed RLE."""
    return int(mask_utils.area(rle))
