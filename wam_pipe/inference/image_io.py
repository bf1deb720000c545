"""Reading and writing the images, masks and messages of `wam-pipe embed` / `detect`, with one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from wam_pipe.core.errors import UserError
from wam_pipe.core.pixel_limit import ImageTooLarge, open_image


def _open(path: Path, what: str) -> Image.Image:
    if not path.is_file():
        raise UserError(f"{path}: no such {what} file; check the path")
    try:
        image = open_image(path)  # our pixel limit (`core.pixel_limit`), checked before anything is decoded
        image.load()
    except ImageTooLarge as err:
        raise UserError(f"{path}: {err}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"{path}: cannot read this {what} ({reason}); give a PNG or JPEG file") from err
    # Camera JPEGs store their orientation in EXIF: use the pixels the way viewers show them.
    return ImageOps.exif_transpose(image)


def read_image(path: str | Path) -> torch.Tensor:
    """An image file as uint8 `(3, H, W)` RGB (grey, palette, CMYK and alpha images are converted)."""
    image = _open(Path(path), "image").convert("RGB")
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).contiguous()  # (3, H, W)


def read_mask(path: str | Path, size: tuple[int, int]) -> torch.Tensor:
    """A mask file as float 0/1 `(1, H, W)` (pixels above half intensity are watermarked; alpha is ignored).

    Args:
        size: (H, W) of the image it belongs to; another size is a UserError.
    """
    path = Path(path)
    image = _open(path, "mask").convert("L")
    if (image.height, image.width) != tuple(size):
        raise UserError(f"{path}: mask is {image.width}x{image.height} but the image is {size[1]}x{size[0]}; give a "
                        "mask of the image's size")
    mask = torch.from_numpy(np.asarray(image).copy()) > 127
    return mask.float()[None]  # (1, H, W)


def write_image(path: str | Path, image: torch.Tensor) -> None:
    """Save uint8 `(3, H, W)`; the format follows the extension (use .png to keep the watermark intact)."""
    path = Path(path)
    array = image.permute(1, 2, 0).cpu().numpy()
    _save(Image.fromarray(np.ascontiguousarray(array)), path)  # (H, W, 3) uint8 -> RGB


def write_mask(path: str | Path, mask: torch.Tensor) -> None:
    """Save a 0/1 mask `(H, W)` as a black/white PNG (255 = watermarked)."""
    array = (mask.cpu().numpy() > 0).astype(np.uint8) * 255
    _save(Image.fromarray(array), Path(path))  # (H, W) uint8 -> L


def write_labels(path: str | Path, labels: torch.Tensor, count: int) -> None:
    """Save a label map `(H, W)` (0 = no watermark, 1..count = watermark index) as a palette PNG: the pixel values
    are the labels, and the palette gives each label its own colour for viewing."""
    array = labels.cpu().numpy().astype(np.uint8)
    image = Image.frombytes("P", (array.shape[1], array.shape[0]), np.ascontiguousarray(array).tobytes())
    palette = [0, 0, 0]
    colours = [(230, 40, 40), (40, 180, 60), (40, 90, 230), (240, 200, 30), (200, 60, 220), (30, 210, 220)]
    for i in range(1, 256):
        palette += list(colours[(i - 1) % len(colours)]) if i <= max(count, 1) else [0, 0, 0]
    image.putpalette(palette)
    _save(image, Path(path))


def _save(image: Image.Image, path: Path) -> None:
    if path.parent and not path.parent.exists():
        raise UserError(f"{path}: folder {path.parent} does not exist; create it or choose another output path")
    try:
        image.save(path)
    except (ValueError, KeyError) as err:  # unknown extension
        raise UserError(f"{path}: cannot write this format ({err}); use a .png file name") from err
    except OSError as err:
        raise UserError(f"{path}: cannot write ({err.strerror or err})") from err


def parse_message(text: str, nbits: int) -> torch.Tensor:
    """A message given as a string of 0/1 characters (spaces and underscores allowed as separators) -> float
    `(nbits,)`. Wrong characters or length are a UserError."""
    bits = text.replace(" ", "").replace("_", "")
    bad = sorted(set(bits) - {"0", "1"})
    if bad:
        raise UserError(f"--message: {text!r} contains {', '.join(repr(c) for c in bad)}; a message is a string of "
                        f"{nbits} characters 0 and 1")
    if len(bits) != nbits:
        raise UserError(f"--message: {len(bits)} bits given but this checkpoint was trained with {nbits} bits; give "
                        f"{nbits} characters 0/1 (or --random)")
    return torch.tensor([float(c) for c in bits])


def format_message(bits: torch.Tensor) -> str:
    """`(nbits,)` 0/1 -> '0110...'."""
    return "".join("1" if b > 0.5 else "0" for b in bits.tolist())
