"""One decompression-bomb limit for every image wam-pipe decodes (shard build, the per-file loader, embed/detect).

A small file can declare a huge image (a 10000 x 10000 PNG of one colour is a few KB) and take gigabytes to decode.
Every reader checks the declared size against `max_image_pixels()` before decoding:

- default: Pillow's own threshold, 89,478,485 pixels (~89.5 MP, e.g. 9459 x 9459);
- `WAM_PIPE_MAX_IMAGE_PIXELS=N` (environment) changes it for every reader at once, e.g. 200000000 for 200 MP scans.

Readers turn a refusal into their own outcome: the shard build skips the image (kind `bomb`), the per-file loader
and `embed`/`detect` stop with one line naming the file.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from PIL import Image

from wam_pipe.core.errors import UserError

ENV = "WAM_PIPE_MAX_IMAGE_PIXELS"
DEFAULT_MAX_PIXELS = 89_478_485  # PIL.Image.MAX_IMAGE_PIXELS's default


def max_image_pixels() -> int:
    """The limit in pixels (width x height), from `WAM_PIPE_MAX_IMAGE_PIXELS` or the default."""
    text = os.environ.get(ENV)
    if text is None or not text.strip():
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise UserError(f"{ENV}={text!r}: expected a positive number of pixels (default {DEFAULT_MAX_PIXELS})")
    return value


def too_many_pixels(width: int, height: int) -> str | None:
    """Why an image of `width` x `height` is refused, or None when it is within the limit."""
    limit = max_image_pixels()
    if width * height <= limit:
        return None
    return (f"decompression bomb: {width}x{height} = {width * height:,} pixels exceeds the limit of {limit:,} "
            f"(set {ENV} to raise it)")


class ImageTooLarge(ValueError):
    """The image declares more pixels than `max_image_pixels()`; the message says how many and how to raise it."""


def open_image(path: Any) -> Image.Image:
    """`PIL.Image.open` (lazy: only the header is read) with this module's limit in place of Pillow's.

    Raises:
        ImageTooLarge: over the limit (nothing was decoded).
        Whatever `Image.open` raises for missing or unreadable files.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # Pillow's check would refuse at 2x its own
        try:
            image = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    reason = too_many_pixels(*image.size)
    if reason:
        image.close()
        raise ImageTooLarge(reason)
    return image
