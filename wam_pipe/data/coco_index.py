"""Parse a COCO instances JSON once into the compact index the builder and the per-file loader need.

The JSON's `images` list is the source of truth: images are kept in ascending id order, images without annotations
are kept (with an empty list), and annotations naming an unknown image id are counted and reported, not used.
Each image's annotations are kept as one JSON `bytes` object rather than as Python dicts: forked loader workers then
touch one refcount per image instead of every number of every polygon (copy-on-read would duplicate the index).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wam_pipe.errors import UserError

SAMPLE_KEY_DIGITS = 12  # COCO's own file-name width: 000000391895


def sample_key(image_id: int) -> str:
    """The sample key of an image id: zero-padded, no dots (WebDataset splits keys at the first dot)."""
    return f"{image_id:0{SAMPLE_KEY_DIGITS}d}"


@dataclass(frozen=True)
class ImageRecord:
    """One entry of the JSON's `images` list, with its annotations as compact JSON bytes."""

    id: int
    file_name: str
    height: int
    width: int
    annotations_json: bytes = b"[]"

    @property
    def key(self) -> str:
        return sample_key(self.id)

    def annotations(self) -> list[dict[str, Any]]:
        """This image's annotations, parsed on demand."""
        return json.loads(self.annotations_json)


@dataclass
class CocoIndex:
    """What the data path needs from an instances JSON.

    Attributes:
        path: the annotation file.
        images: every image of the JSON, ascending id.
        categories: the JSON's `categories`, ascending id (`id`, `name`, `supercategory`).
        annotation_count: number of annotations attached to a known image.
        unknown_image_ids: sorted ids named by annotations whose image is not in `images`.
        unknown_annotation_count: how many annotations name such ids.
    """

    path: Path
    images: list[ImageRecord]
    categories: list[dict[str, Any]]
    annotation_count: int = 0
    unknown_image_ids: list[int] = field(default_factory=list)
    unknown_annotation_count: int = 0


def sha256_file(path: Path, chunk_bytes: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{path}: annotation file not found; pass the COCO instances JSON "
                        "(e.g. instances_train2017.json)")
    try:
        with open(path, "rb") as stream:
            data = json.load(stream)
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON: {err}; fix or re-download the annotation file") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not valid JSON (not UTF-8 text: {err}); pass the COCO instances JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise UserError(f"{path}: not a COCO instances file (no `images` list); pass the COCO instances JSON")
    return data


def _image_field(path: Path, position: int, entry: Any, name: str, kind: type) -> Any:
    value = entry.get(name) if isinstance(entry, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise UserError(f"{path}: images[{position}].{name}: missing or not a {kind.__name__}; fix the annotation file")
    return value


def _group_annotations(path: Path, data: dict[str, Any], known: set[int]) -> tuple[dict[int, list], list[int], int]:
    by_image: dict[int, list[dict[str, Any]]] = {}
    unknown: dict[int, int] = {}
    for position, ann in enumerate(data.get("annotations") or []):
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        if not isinstance(image_id, int) or isinstance(image_id, bool):
            raise UserError(f"{path}: annotations[{position}].image_id: missing or not an int; fix the annotation file")
        if image_id not in known:
            unknown[image_id] = unknown.get(image_id, 0) + 1
            continue
        by_image.setdefault(image_id, []).append(ann)
    return by_image, sorted(unknown), sum(unknown.values())


def load_coco_index(path: str | Path) -> CocoIndex:
    """Parse a COCO instances JSON.

    Raises:
        UserError: the file is missing, is not JSON (with the parser's message), or lacks required fields.
    """
    path = Path(path)
    data = _read_json(path)
    records: dict[int, tuple[str, int, int]] = {}
    for position, entry in enumerate(data["images"]):
        image_id = _image_field(path, position, entry, "id", int)
        if image_id in records:
            raise UserError(f"{path}: images[{position}]: duplicate image id {image_id}; fix the annotation file")
        file_name = _image_field(path, position, entry, "file_name", str)
        height = _image_field(path, position, entry, "height", int)
        width = _image_field(path, position, entry, "width", int)
        records[image_id] = (file_name, height, width)
    by_image, unknown_ids, unknown_count = _group_annotations(path, data, set(records))
    images = [
        ImageRecord(image_id, name, height, width, _compact_json(by_image.get(image_id, [])))
        for image_id, (name, height, width) in sorted(records.items())
    ]
    categories = sorted(
        ({"id": c["id"], "name": str(c.get("name", c["id"])), "supercategory": str(c.get("supercategory", ""))}
         for c in data.get("categories") or [] if isinstance(c, dict) and "id" in c),
        key=lambda c: c["id"],
    )
    return CocoIndex(path, images, categories, sum(len(v) for v in by_image.values()), unknown_ids, unknown_count)


def _compact_json(annotations: list[dict[str, Any]]) -> bytes:
    # Only the fields the data path reads: keeps the per-image bytes small for the 448 MB train JSON.
    kept = [
        {
            "id": ann.get("id"),
            "category_id": ann.get("category_id"),
            "iscrowd": int(ann.get("iscrowd", 0) or 0),
            "segmentation": ann.get("segmentation"),
        }
        for ann in annotations
    ]
    return json.dumps(kept, separators=(",", ":")).encode()
