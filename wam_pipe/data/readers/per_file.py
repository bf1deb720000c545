"""The per-file COCO source: the reference trainer's design, done carefully, with the shard path's output.

Every sample is made at load time from the original files: full-resolution decode, resize of the short side +
center crop, and rasterisation of the *selected* instances only (as the reference does) at full resolution, with
the same nearest resize and crop as the shard builder. The JSON is parsed once, in `setup` (not in every worker), and
each image's annotations are kept as one bytes object (see `coco_index`).

Uses: training without shards (`Load(images=..., annotations=...)`), the oracle in tests (same masks as the shards
for the same instances), and the reference arm of `wam-pipe bench load`. Unlike the shard builder it cannot skip a
bad image (every rank must yield its planned batch count), so a missing or corrupt file stops the epoch with a
`UserError` naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from wam_pipe.data import rle as rle_ops
from wam_pipe.data.coco_index import ImageRecord
from wam_pipe.data.imageops import CropGeometry, crop_geometry, crop_pixels, resize_crop_image
from wam_pipe.data.readers.mask_select import MaskSelector
from wam_pipe.data.readers.epoch_plan import Piece
from wam_pipe.data.shards.prepare import SkipImage, full_resolution_rles, open_rgb
from wam_pipe.core.errors import UserError
from wam_pipe.core.pixel_limit import too_many_pixels
from wam_pipe.data.readers.decode import preload_decoder

_JPEG_MAGIC = b"\xff\xd8"


class PerFileSource:
    """COCO images + JSON as a loader `Source`: one unit per image, in the JSON's id order.

    Args:
        images_dir: the folder of the JSON's `file_name`s.
        records: the parsed image records (`coco_index.load_coco_index(...).images`).
        size: the side of the square samples.
        decoder: "torchvision" (JPEGs decoded by torchvision.io, resized with torch's antialiased bilinear, within
            +-1 of PIL) or "pil" (the shard builder's exact pixels before JPEG re-encoding).
    """

    buffered = False  # units are single images, already in a fresh random order each epoch

    def __init__(self, images_dir: Path, records: list[ImageRecord], size: int, decoder: str):
        self.images_dir = Path(images_dir)
        self.records = records
        self.unit_sizes = [1] * len(records)
        self.size = size
        self.decoder = decoder

    def preload(self) -> None:
        preload_decoder(self.decoder)
        if self.decoder == "torchvision":
            import torchvision.transforms.v2.functional  # noqa: F401  (the resize)

    def read(self, pieces: Iterable[Piece]) -> Iterator[int]:
        for piece in pieces:
            yield from range(piece.unit, piece.unit + piece.stop - piece.start)

    def decode(self, unit: int, selector: MaskSelector, rng: np.random.Generator) -> dict[str, Any]:
        record = self.records[unit]
        geometry = crop_geometry(record.width, record.height, self.size)
        path = self.images_dir / record.file_name
        try:
            image = self._image(path, record, geometry)
            annotations = record.annotations()
            chosen = [annotations[i] for i in selector.choose(len(annotations), rng)]
            masks = _masks(record, chosen, selector, geometry)
        except SkipImage as skip:
            raise UserError(f"{path}: {skip.reason}; fix the file, or build shards (shard build skips bad images)")
        return {"key": record.key, "image": image, "masks": torch.from_numpy(masks)}

    def _image(self, path: Path, record: ImageRecord, geometry: CropGeometry) -> torch.Tensor:
        if self.decoder == "torchvision":
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise SkipImage("file missing") from None
            if data[:2] == _JPEG_MAGIC:
                bomb = too_many_pixels(record.width, record.height)  # checked against the JSON's size before decoding
                if bomb:
                    raise SkipImage(bomb, "bomb")
                return _torch_resize_crop(_decode_jpeg(data, path), record, geometry)
        rgb = resize_crop_image(open_rgb(path, record.width, record.height), geometry)
        return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1)  # (3, S, S)


def _decode_jpeg(data: bytes, path: Path) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    except RuntimeError as err:
        raise SkipImage(f"corrupt or truncated image (RuntimeError: {err})") from None


def _torch_resize_crop(image: torch.Tensor, record: ImageRecord, geometry: CropGeometry) -> torch.Tensor:
    from torchvision.transforms.v2.functional import resize

    height, width = image.shape[-2:]
    if (width, height) != (record.width, record.height):
        raise SkipImage(f"image is {width}x{height} but the JSON says {record.width}x{record.height}")
    resized = resize(image, [geometry.resized_height, geometry.resized_width], antialias=True)
    top, left, size = geometry.top, geometry.left, geometry.size
    return resized[:, top : top + size, left : left + size].contiguous()  # (3, S, S)


def _masks(record: ImageRecord, chosen: list[dict], selector: MaskSelector, geometry: CropGeometry) -> np.ndarray:
    """The chosen instances' masks at the crop: the full-resolution RLEs sampled at the nearest-resize + crop's
    pixels (as the shard builder)."""
    size = geometry.size
    masks = np.zeros((selector.channels, size, size), dtype=np.uint8)
    if not chosen:
        return masks
    rles = full_resolution_rles(record, chosen)
    if selector.mode == "union":
        rles = [rle_ops.union_rle(rles)]  # still runs: the union is merged without decoding
    rows, cols = crop_pixels(geometry)
    cropped = rle_ops.sample_rles(rles, rows, cols)  # (S, S, n), read off the runs as the shard builder does
    masks[: cropped.shape[2]] = cropped.transpose(2, 0, 1)
    return masks
