"""The deterministic geometry of the training transform: resize the short side to `size`, center-crop `size` x `size`.

The numbers follow torchvision's `Resize(size)` + `CenterCrop(size)` exactly (the reference's transform), so a
sample built here has the pixels the reference trainer would have computed from the same file:
- the long side becomes `int(size * long / short)` (truncated, as torchvision does);
- the crop's top-left corner is `int(round((resized - size) / 2))` on each axis (Python rounding, as torchvision).

Images are resized with PIL bilinear, which is antialiased when shrinking (torchvision's path for PIL images).
Masks use PIL's NEAREST, which samples at pixel *centres* (`src ~ floor((dst + 0.5) * src_len / dst_len)`);
torchvision's legacy tensor NEAREST samples `floor(dst * src_len / dst_len)`, half a pixel off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class CropGeometry:
    """Where a `size` x `size` sample comes from in an image of `width` x `height` pixels.

    Attributes:
        width / height: the original image size.
        resized_width / resized_height: the size after the short-side resize.
        left / top: the crop's corner in the resized image.
        size: the side of the stored square.
    """

    width: int
    height: int
    resized_width: int
    resized_height: int
    left: int
    top: int
    size: int

    @property
    def crop_box(self) -> tuple[int, int, int, int]:
        """The crop as PIL's `(left, upper, right, lower)` box in resized coordinates."""
        return self.left, self.top, self.left + self.size, self.top + self.size


def crop_geometry(width: int, height: int, size: int) -> CropGeometry:
    """The short-side-resize + center-crop geometry of torchvision's `Resize(size)`, `CenterCrop(size)`."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if width <= height:
        resized_width, resized_height = size, int(size * height / width)
    else:
        resized_width, resized_height = int(size * width / height), size
    left = int(round((resized_width - size) / 2.0))
    top = int(round((resized_height - size) / 2.0))
    return CropGeometry(width, height, resized_width, resized_height, left, top, size)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB. Alpha is dropped (the reference's `convert("RGB")`); 16-bit and float grey are scaled."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # PIL's convert clips these to 0..255 instead of scaling; 16-bit PNGs would come out almost white.
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I") else max(float(values.max()), 1.0)
        grey = np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # via RGBA: PIL warns when a palette with transparency goes straight to RGB
    return image.convert("RGB")


def resize_crop_image(image: Image.Image, geometry: CropGeometry) -> Image.Image:
    """RGB PIL image -> the `size` x `size` crop (bilinear, antialiased when shrinking)."""
    resized = image.resize((geometry.resized_width, geometry.resized_height), Image.BILINEAR)
    return resized.crop(geometry.crop_box)


def nearest_indices(src_len: int, dst_len: int, start: int, count: int) -> np.ndarray:
    """Source pixel of each output pixel `start .. start+count-1` of PIL's NEAREST resize `src_len -> dst_len`.

    PIL samples pixel centres in 16.16 fixed point, which rounds exact ties differently from a float formula, so
    the mapping is read off PIL itself: resize a ramp of source indices (one int32 row) and see where each
    output pixel came from. The mapping of one axis does not depend on the other (no rotation).
    """
    ramp = Image.fromarray(np.arange(src_len, dtype=np.int32)[None, :], mode="I")
    picked = np.asarray(ramp.resize((dst_len, 1), Image.NEAREST), dtype=np.int64)[0]
    return picked[start : start + count]


def crop_pixels(geometry: CropGeometry) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols): the full-resolution pixel each output pixel of the PIL-NEAREST resize + crop takes."""
    rows = nearest_indices(geometry.height, geometry.resized_height, geometry.top, geometry.size)
    cols = nearest_indices(geometry.width, geometry.resized_width, geometry.left, geometry.size)
    return rows, cols


def resize_crop_masks(masks: np.ndarray, geometry: CropGeometry) -> np.ndarray:
    """Full-resolution `(H, W, N)` masks -> `(size, size, N)`: PIL-NEAREST resize then crop, done as one gather."""
    rows, cols = crop_pixels(geometry)
    return masks[rows[:, None], cols[None, :]]  # (size, size, N)
