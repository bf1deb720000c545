"""Turn one COCO image + its annotations into a stored sample: the work done once, at shard-build.

Per image: decode (any mode -> RGB), resize the short side to `size` and center-crop (see `imageops`), rasterise every
instance at full resolution with pycocotools, apply the same resize (PIL NEAREST) and crop to the masks, and store
them as COCO RLE at the stored size. Images that cannot be used raise `SkipImage` with a one-line reason and a
short kind (`SKIP_KINDS`).

The sample format (a contract, see docs/data.md): `<key>.jpg` (or `.png`) and `<key>.json` holding `image_id`,
`file_name`, `height`, `width`, `orig_height`, `orig_width` and `annotations`, a list of
`{id, category_id, iscrowd, area, segmentation: {size: [h, w], counts: str}}` at the stored size.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from wam_pipe.core.pixel_limit import ImageTooLarge, open_image
from wam_pipe.data import rle as rle_ops
from wam_pipe.data.coco_index import ImageRecord
from wam_pipe.data.imageops import CropGeometry, crop_geometry, crop_pixels, resize_crop_image, to_rgb

IMAGE_EXTENSIONS = {"jpeg": "jpg", "png": "png"}
JPEG_SUBSAMPLING = "4:2:0"  # recorded in the manifest; libjpeg's default, what COCO's own files use


class SkipImage(Exception):
    """This image cannot become a sample.

    Attributes:
        reason: why, in one line.
        kind: its category, a key of `wam_pipe.data.shards.manifest.SKIP_KINDS` (`missing`, `corrupt`, `bomb`, ...).
    """

    def __init__(self, reason: str, kind: str = "other"):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


def open_rgb(path: Path, expected_width: int, expected_height: int) -> Image.Image:
    """Decode an image file fully, as RGB, checking it against the size the JSON gives.

    Raises:
        SkipImage: missing, unreadable, corrupt or truncated, a decompression bomb, or not the JSON's size.
    """
    try:
        image = open_image(path)  # our pixel limit (`core.pixel_limit`), checked before anything is decoded
        width, height = image.size
        image.load()
    except ImageTooLarge as err:
        raise SkipImage(str(err), "bomb") from None
    except FileNotFoundError:
        raise SkipImage("file missing", "missing") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise SkipImage(f"decompression bomb: {err}", "bomb") from None
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError... for damaged files
        raise SkipImage(f"corrupt or truncated image ({type(err).__name__}: {err})", "corrupt") from None
    if (width, height) != (expected_width, expected_height):
        raise SkipImage(f"image is {width}x{height} but the JSON says {expected_width}x{expected_height}", "size")
    return to_rgb(image)


def full_resolution_rles(record: ImageRecord, annotations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every annotation of `record` rasterised at the image's full resolution, as compressed RLE.

    Raises:
        SkipImage: an annotation's segmentation is malformed or sized for another image.
    """
    rles = []
    for ann in annotations:
        try:
            rles.append(rle_ops.segmentation_to_rle(ann.get("segmentation"), record.height, record.width))
        except rle_ops.SegmentationError as err:
            raise SkipImage(f"annotation {ann.get('id')}: {err}", "annotation") from None
    return rles


def stored_rles(full_rles: list[dict[str, Any]], geometry: CropGeometry) -> list[dict[str, Any]]:
    """Full-resolution RLEs -> RLEs of the `size` x `size` crop (resize nearest + crop, re-encoded). The crop's
    pixels are read off the runs (`rle.sample_rles`): the full masks are never decoded."""
    if not full_rles:
        return []
    rows, cols = crop_pixels(geometry)
    return rle_ops.encode_masks(rle_ops.sample_rles(full_rles, rows, cols))  # n RLEs of (size, size)


@dataclass
class PreparedSample:
    """One stored sample before encoding: the cropped RGB image and its JSON record."""

    key: str
    image: Image.Image
    record: dict[str, Any]

    @property
    def annotations(self) -> list[dict[str, Any]]:
        return self.record["annotations"]


def prepare_sample(images_dir: Path, record: ImageRecord, size: int) -> PreparedSample:
    """Decode, resize, crop and rasterise one image into a `PreparedSample`.

    Raises:
        SkipImage: the image or one of its annotations cannot be used.
    """
    image = open_rgb(images_dir / record.file_name, record.width, record.height)
    annotations = record.annotations()
    geometry = crop_geometry(record.width, record.height, size)
    rles = stored_rles(full_resolution_rles(record, annotations), geometry)
    stored_annotations = [
        {
            "id": ann.get("id"),
            "category_id": ann.get("category_id"),
            "iscrowd": int(ann.get("iscrowd", 0) or 0),
            "area": rle_ops.rle_area(rle),
            "segmentation": rle,
        }
        for ann, rle in zip(annotations, rles)
    ]
    meta = {
        "image_id": record.id,
        "file_name": record.file_name,
        "height": size,
        "width": size,
        "orig_height": record.height,
        "orig_width": record.width,
        "annotations": stored_annotations,
    }
    return PreparedSample(record.key, resize_crop_image(image, geometry), meta)


SA1B_SORT_KEYS = {"area": "area", "predicted_iou": "predicted_iou", "stability": "stability_score"}


def select_masks(annotations: list[Any], max_masks: int | None, order: str) -> list[dict[str, Any]]:
    """The first `max_masks` annotations by `order` (largest value first, ties in file order); all when None.

    Raises:
        SkipImage: an annotation is not an object or its sort value is not a number.
    """
    key = SA1B_SORT_KEYS[order]
    values = []
    for position, ann in enumerate(annotations):
        value = ann.get(key) if isinstance(ann, dict) else None
        if type(value) not in (int, float):
            raise SkipImage(f"annotation JSON: annotations[{position}].{key}: expected a number, got {value!r}",
                            "json")
        values.append((-value, position))
    chosen = sorted(values)[: max_masks if max_masks is not None else len(values)]
    return [annotations[position] for _, position in chosen]


def _parse_sa1b_json(data: bytes) -> tuple[int, int, list[Any]]:
    """(width, height, annotations) of an SA-1B JSON member; `SkipImage` (kind `json`) when unusable."""
    try:
        meta = json.loads(data)
        image = meta["image"]
        width, height, annotations = image["width"], image["height"], meta["annotations"]
    except (ValueError, KeyError, TypeError) as err:
        raise SkipImage(f"annotation JSON does not parse or lacks image/annotations ({type(err).__name__}: {err})",
                        "json") from None
    if type(width) is not int or type(height) is not int or not isinstance(annotations, list):
        raise SkipImage("annotation JSON: image.width/height must be ints and annotations a list", "json")
    return width, height, annotations


def prepare_sa1b_sample(record: Any, image_bytes: bytes, json_bytes: bytes, size: int, max_masks: int | None,
                        order: str) -> PreparedSample:
    """One SA-1B pair (`sa_N.jpg`, `sa_N.json` bytes) -> a `PreparedSample` with the chosen masks.

    The image is decoded once and must be the JSON's size; each chosen mask (compressed RLE at the image's size) is
    decoded, resized and cropped as COCO instances are, and stored as `{id, category_id: 1, iscrowd: 0, area,
    segmentation}`.

    Raises:
        SkipImage: the JPEG is damaged or not the JSON's size, the JSON is unusable, or an RLE's size disagrees.
    """
    width, height, annotations = _parse_sa1b_json(json_bytes)
    image = open_rgb(io.BytesIO(image_bytes), width, height)
    chosen = select_masks(annotations, max_masks, order)
    full = full_resolution_rles(ImageRecord(record.id, record.file_name, height, width), chosen)
    geometry = crop_geometry(width, height, size)
    stored = [{"id": ann.get("id"), "category_id": 1, "iscrowd": 0, "area": rle_ops.rle_area(rle),
               "segmentation": rle} for ann, rle in zip(chosen, stored_rles(full, geometry))]
    meta = {"image_id": record.id, "file_name": Path(record.image_member).name, "height": size, "width": size,
            "orig_height": height, "orig_width": width, "annotations": stored}
    return PreparedSample(record.key, resize_crop_image(image, geometry), meta)


def encode_image(image: Image.Image, image_format: str, quality: int) -> bytes:
    """RGB PIL image -> JPEG (`quality`, 4:2:0) or PNG bytes, deterministic for a given Pillow build."""
    buffer = io.BytesIO()
    image.info = {}  # no ICC profile / EXIF copied from the source: PIL's PNG encoder would embed them
    if image_format == "jpeg":
        image.save(buffer, format="JPEG", quality=quality, subsampling=JPEG_SUBSAMPLING, optimize=False)
    elif image_format == "png":
        image.save(buffer, format="PNG", compress_level=6)
    else:
        raise ValueError(f"image_format must be one of {sorted(IMAGE_EXTENSIONS)}, got {image_format!r}")
    return buffer.getvalue()


def encode_sample(sample: PreparedSample, image_format: str, quality: int) -> dict[str, Any]:
    """A `PreparedSample` -> the tar members of one sample: `{"__key__", "jpg"|"png": bytes, "json": bytes}`."""
    return {
        "__key__": sample.key,
        IMAGE_EXTENSIONS[image_format]: encode_image(sample.image, image_format, quality),
        "json": json.dumps(sample.record, separators=(",", ":")).encode(),
    }
