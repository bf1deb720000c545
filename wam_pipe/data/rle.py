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


def counts_from_string(counts: str) -> np.ndarray:
    """Expand COCO's compressed counts string (pycocotools' `rleFrString` format) to int64 run lengths.

    pycocotools decodes without checking that the runs fit the mask (and its merge loops forever on runs that do
    not), so untrusted RLEs are expanded and checked here first. Short strings (most masks at stored sizes: ~100
    characters at 256 px) go through a plain loop, long ones through numpy, whichever is cheaper (measured:
    benchmarks/RESULTS.md, "RLE checks").

    Format: each run is a little-endian base-32 number, one character per 5 bits (`chr(48 + bits)`, bit 0x20 =
    "more characters follow", the last character's bit 0x10 = negative); runs after the third are stored as the
    difference to the run two places back.

    Raises:
        SegmentationError: a character outside the alphabet, the string ends inside a number, or a number too long.
    """
    if len(counts) < _VECTOR_FROM:
        return np.asarray(_runs_by_loop(counts), dtype=np.int64)
    codes = np.frombuffer(counts.encode("latin-1", "replace"), dtype=np.uint8).astype(np.int64) - 48
    if codes.size == 0:
        return np.zeros(0, dtype=np.int64)
    if codes.min() < 0 or codes.max() > 63:
        raise SegmentationError("compressed RLE counts hold a character outside pycocotools' alphabet")
    last = (codes & 0x20) == 0  # (n,) True where a number ends
    if not last[-1]:
        raise SegmentationError("compressed RLE counts end inside a number")
    ends = np.flatnonzero(last)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > _MAX_RLE_DIGITS:
        raise SegmentationError(f"compressed RLE counts hold a number of {int(lengths.max())} digits")
    position = np.arange(codes.size) - np.repeat(starts, lengths)  # digit index within its number
    values = np.add.reduceat((codes & 0x1F) << (5 * position), starts)
    negative = (codes[ends] & 0x10) != 0
    values = values - (negative.astype(np.int64) << (5 * lengths))  # sign-extend
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])  # run i >= 3 adds run i - 2: runs 1, 3, 5... are a running sum
    runs[2::2] = np.cumsum(values[2::2])  # ... and so are runs 2, 4, 6...
    return runs


_MAX_RLE_DIGITS = 8  # 40 bits: far above any image's pixel count, far below int64 overflow
_VECTOR_FROM = 600  # characters; below it numpy's per-call overhead costs more than the loop


def _runs_by_loop(counts: str) -> list[int]:
    """`counts_from_string` for short strings, one character at a time (same checks)."""
    runs: list[int] = []
    pos, end = 0, len(counts)
    while pos < end:
        value, shift, digits = 0, 0, 0
        while True:
            if pos >= end:
                raise SegmentationError("compressed RLE counts end inside a number")
            code = ord(counts[pos]) - 48
            if not 0 <= code <= 63:
                raise SegmentationError("compressed RLE counts hold a character outside pycocotools' alphabet")
            value |= (code & 0x1F) << shift
            pos, shift, digits = pos + 1, shift + 5, digits + 1
            if digits > _MAX_RLE_DIGITS:
                raise SegmentationError(f"compressed RLE counts hold a number of more than {_MAX_RLE_DIGITS} digits")
            if not code & 0x20:
                if code & 0x10:
                    value -= 1 << shift  # sign-extend
                break
        if len(runs) > 2:
            value += runs[-2]  # runs after the third are stored as differences
        runs.append(value)
    return runs


def check_counts_total(runs: Any, height: int, width: int) -> None:
    """Raise `SegmentationError` unless the runs are non-negative and cover exactly `height` x `width` pixels."""
    runs = np.asarray(runs, dtype=np.int64)
    if (runs < 0).any():
        raise SegmentationError("RLE has a negative run length")
    total = int(runs.sum())
    if total != height * width:
        raise SegmentationError(f"RLE runs cover {total} pixels, not {height}x{width}={height * width}")


def check_rle(rle: Any, height: int | None = None, width: int | None = None) -> np.ndarray:
    """Raise `SegmentationError` unless `rle` is a compressed RLE whose runs tile its mask exactly; return the runs
    (int64 run lengths, as `counts_from_string`).

    Every RLE read back from a shard goes through this before pycocotools sees it: pycocotools trusts the counts,
    decodes inconsistent ones into garbage and loops forever merging them. `height`/`width`: the size it must have.
    """
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise SegmentationError("mask is not a compressed RLE ({'size': [h, w], 'counts': str})")
    try:
        h, w = (int(v) for v in rle["size"])
    except (TypeError, ValueError):
        raise SegmentationError(f"RLE size {rle['size']!r} is not [height, width]") from None
    if height is not None and (h, w) != (height, width):
        raise SegmentationError(f"RLE size {[h, w]} does not match the expected {[height, width]}")
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("latin-1")
    if not isinstance(counts, str):
        raise SegmentationError(f"RLE counts are a {type(counts).__name__}, not a compressed string")
    runs = counts_from_string(counts)
    check_counts_total(runs, h, w)
    return runs


def check_rles(rles: list[dict[str, Any]], height: int | None = None, width: int | None = None) -> None:
    """`check_rle` on each, all of one size (the first one's unless `height`/`width` are given)."""
    for rle in rles:
        if height is None and isinstance(rle, dict) and "size" in rle:
            check_rle(rle)
            height, width = (int(v) for v in rle["size"])
        else:
            check_rle(rle, height, width)


def _polygons_to_rle(polygons: list, height: int, width: int) -> dict[str, Any]:
    # pycocotools reads a list whose first entry has exactly 4 numbers as boxes, and rejects polygons with fewer than
    # 3 points, so keep only real polygons (>= 6 coordinates, even count).
    cleaned = []
    for poly in polygons:
        if not isinstance(poly, (list, tuple)):
            raise SegmentationError("polygon list holds a non-list entry")
        coords = [float(v) for v in poly[: len(poly) // 2 * 2]]
        if len(coords) >= 6:
            check_polygon(coords, height, width)
            cleaned.append(coords)
    if not cleaned:
        return empty_rle(height, width)
    rles = mask_utils.frPyObjects(cleaned, height, width)
    return _as_str_counts(mask_utils.merge(rles) if len(rles) > 1 else rles[0])


POLYGON_MARGIN = 1.0  # coordinates may lie up to one image size outside the image (COCO's own go ~1 px outside)


def check_polygon(coords: list[float], height: int, width: int) -> None:
    """Raise `SegmentationError` unless every coordinate is finite and within `POLYGON_MARGIN` image sizes of the image.

    Why: pycocotools rasterises a polygon by walking every edge pixel by pixel at 5x resolution, without bounds:
    a coordinate of 1e8 segfaults it, NaN makes it allocate until the kernel kills the process.
    """
    values = np.asarray(coords, dtype=np.float64)
    if not np.isfinite(values).all():
        raise SegmentationError("polygon has a non-finite coordinate (NaN or inf)")
    span = POLYGON_MARGIN * max(height, width)
    xs, ys = values[0::2], values[1::2]
    if xs.min() < -span or xs.max() > width + span or ys.min() < -span or ys.max() > height + span:
        worst = float(values[np.argmax(np.abs(values))])
        raise SegmentationError(f"polygon coordinate {worst:g} lies far outside the {width}x{height} image")


def decode_rles(rles: list[dict[str, Any]]) -> np.ndarray:
    """Decode RLEs of one size to a uint8 `(H, W, N)` array (Fortran order, as pycocotools returns it).

    Raises:
        SegmentationError: an RLE is malformed or of another size (checked before pycocotools decodes it).
    """
    check_rles(rles)
    return mask_utils.decode(list(rles))


def sample_rles(rles: list[dict[str, Any]], rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The masks' pixels at `rows` x `cols`, read off the runs: uint8 `(len(rows), len(cols), N)`.

    Equal to `decode_rles(rles)[rows[:, None], cols[None, :]]` without decoding the full masks: a nearest resize +
    crop of a 3.4 MP SA-1B mask to 256 x 256 looks up 65k pixels instead of writing 3.4M (measured:
    benchmarks/RESULTS.md, "SA-1B build"). Runs alternate background / foreground from a background run (COCO's
    convention) in column-major order, so pixel (r, c) is foreground when the run holding `c * H + r` is odd.

    Raises:
        SegmentationError: an RLE is malformed or of another size than the first.
    """
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    out = np.zeros((len(rles), len(cols), len(rows)), dtype=np.uint8)  # (N, C, R)
    height = width = None
    for i, rle in enumerate(rles):
        runs = check_rle(rle, height, width)
        if height is None:
            height, width = (int(v) for v in rle["size"])
            queries = (cols[:, None] * height + rows[None, :]).ravel()  # (C*R,) column-major pixel indices
            ordered = bool((np.diff(queries) >= 0).all())  # a crop's indices are: PIL-NEAREST is monotonic
        ends = np.cumsum(runs)  # (runs,) exclusive end of each run
        if ordered:
            # Place the ~500 run ends among the 65k sorted queries instead of searching each query among the ends:
            # a query's run index is the number of ends at or below it.
            passed = np.bincount(np.searchsorted(queries, ends, side="left"), minlength=len(queries) + 1)
            index = np.cumsum(passed[: len(queries)])
        else:
            index = np.searchsorted(ends, queries, side="right")
        out[i] = (index & 1).reshape(len(cols), len(rows))
    # (R, C, N) as a view: Fortran-ordered, which is the layout `encode_masks` (pycocotools) takes without a copy.
    return out.transpose(2, 1, 0)


def union_rle(rles: list[dict[str, Any]]) -> dict[str, Any]:
    """The union of several RLEs of one size, still run-length encoded (cheaper than decoding each).

    Raises:
        SegmentationError: an RLE is malformed or of another size (pycocotools' merge would loop forever).
    """
    check_rles(rles)
    if len(rles) == 1:
        return rles[0]
    return mask_utils.merge(list(rles), intersect=False)


def decode_union(rles: list[dict[str, Any]], height: int, width: int) -> np.ndarray:
    """Decode the union of `rles` to a uint8 `(H, W)` array; all zeros when `rles` is empty."""
    if not rles:
        return np.zeros((height, width), dtype=np.uint8)
    check_rles(rles, height, width)
    union = rles[0] if len(rles) == 1 else mask_utils.merge(list(rles), intersect=False)
    return mask_utils.decode(union)


def encode_masks(masks: np.ndarray) -> list[dict[str, Any]]:
    """Encode a uint8 `(H, W, N)` stack of 0/1 masks as N compressed RLEs with str counts."""
    fortran = np.asfortranarray(masks, dtype=np.uint8)
    return [_as_str_counts(rle) for rle in mask_utils.encode(fortran)]


def rle_area(rle: dict[str, Any]) -> int:
    """Number of foreground pixels of a compressed RLE."""
    return int(mask_utils.area(rle))
