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

from wam_pipe.core.errors import UserError

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
        malformed_polygons: polygons with an odd number of coordinates or fewer than 3 points (dropped when
            rasterised: pycocotools cannot draw them).
        unknown_category_annotations: annotations whose `category_id` is not in `categories`.
        has_categories: whether the JSON has a `categories` list at all.
        dropped_unannotated: file names of the images the JSON lists but a build left out for having no annotation
            (`shard build --drop-unannotated`); not in `images`.
    """

    path: Path
    images: list[ImageRecord]
    categories: list[dict[str, Any]]
    annotation_count: int = 0
    unknown_image_ids: list[int] = field(default_factory=list)
    unknown_annotation_count: int = 0
    malformed_polygons: int = 0
    unknown_category_annotations: int = 0
    has_categories: bool = True
    dropped_unannotated: tuple[str, ...] = ()


def sha256_file(path: Path, chunk_bytes: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


MAX_REPORTED_PROBLEMS = 5  # structural problems listed at once; the rest are counted


class _Problems:
    """Structural problems of one annotation file, collected in one pass so the first few are reported together."""

    def __init__(self, path: Path):
        self.path = path
        self.lines: list[str] = []
        self.count = 0
        # Not errors, counted in the same pass for the build's warnings (see `CocoIndex`).
        self.malformed_polygons = 0
        self.category_ids: dict[int, int] = {}

    def add(self, where: str, what: str) -> None:
        self.count += 1
        if len(self.lines) < MAX_REPORTED_PROBLEMS:
            self.lines.append(f"{self.path}: {where}: {what}; fix the annotation file")

    def raise_if_any(self) -> None:
        if not self.count:
            return
        more = self.count - len(self.lines)
        tail = [f"{self.path}: ... and {more} more problems"] if more else []
        raise UserError(*self.lines, *tail)


def _shown(value: Any) -> str:
    """A short description of a JSON value for an error message: `str '2'`, `list [1]`, `nothing (missing)`."""
    if value is None:
        return "nothing (missing or null)"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


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
    problems = _Problems(path)
    for name in ("annotations", "categories"):
        if data.get(name) is not None and type(data[name]) is not list:
            problems.add(name, f"expected a list, got {_shown(data[name])}")
    problems.raise_if_any()
    return data


def _image_problem(entry: Any) -> tuple[str, str] | None:
    """The first structural problem of one `images` entry, as (key suffix, what is wrong), or None."""
    if type(entry) is not dict:
        return "", f"expected an object, got {_shown(entry)}"
    for name in ("id", "height", "width"):
        if type(entry.get(name)) is not int:  # `type(...) is int` also rejects booleans
            return f".{name}", f"expected an int, got {_shown(entry.get(name))}"
    file_name = entry.get("file_name")
    if type(file_name) is not str or not file_name:
        return ".file_name", f"expected a non-empty string, got {_shown(file_name)}"
    if file_name.startswith(("/", "\\")) or ".." in file_name.replace("\\", "/").split("/"):
        return ".file_name", f"{file_name!r} points outside the image folder (give a path relative to it)"
    return None


def _annotation_problem(ann: Any) -> tuple[str, str] | None:
    """The first structural problem of one `annotations` entry, or None (one pass over ~860k, so kept lean)."""
    if type(ann) is not dict:
        return "", f"expected an object, got {_shown(ann)}"
    for name in ("image_id", "id", "category_id"):
        if type(ann.get(name)) is not int:
            return f".{name}", f"expected an int, got {_shown(ann.get(name))}"
    iscrowd = ann.get("iscrowd")
    if iscrowd is not None and (type(iscrowd) not in (int, bool, float) or iscrowd not in (0, 1)):
        return ".iscrowd", f"expected 0 or 1, got {_shown(iscrowd)}"
    segmentation = ann.get("segmentation")
    if segmentation is not None and type(segmentation) not in (list, dict):
        return ".segmentation", f"expected a list of polygons or an RLE object, got {_shown(segmentation)}"
    return None


def _read_images(data: dict[str, Any], problems: _Problems) -> dict[int, tuple[str, int, int]]:
    records: dict[int, tuple[str, int, int]] = {}
    for position, entry in enumerate(data["images"]):
        problem = _image_problem(entry)
        if problem is not None:
            problems.add(f"images[{position}]{problem[0]}", problem[1])
        elif entry["id"] in records:
            problems.add(f"images[{position}].id", f"duplicate image id {entry['id']}")
        else:
            records[entry["id"]] = (entry["file_name"], entry["height"], entry["width"])
    return records


def _group_annotations(
    data: dict[str, Any], known: dict[int, Any], problems: _Problems
) -> tuple[dict[int, list], list[int], int]:
    by_image: dict[int, list[dict[str, Any]]] = {}
    unknown: dict[int, int] = {}
    for position, ann in enumerate(data.get("annotations") or []):
        problem = _annotation_problem(ann)
        if problem is not None:
            problems.add(f"annotations[{position}]{problem[0]}", problem[1])
            continue
        segmentation = ann.get("segmentation")
        if type(segmentation) is list:
            problems.malformed_polygons += sum(1 for poly in segmentation
                                               if type(poly) is list and (len(poly) % 2 or len(poly) < 6))
        problems.category_ids[ann["category_id"]] = problems.category_ids.get(ann["category_id"], 0) + 1
        image_id = ann["image_id"]
        if image_id not in known:
            unknown[image_id] = unknown.get(image_id, 0) + 1
            continue
        by_image.setdefault(image_id, []).append(ann)
    return by_image, sorted(unknown), sum(unknown.values())


def _read_categories(data: dict[str, Any], problems: _Problems) -> list[dict[str, Any]]:
    categories: dict[int, dict[str, Any]] = {}
    for position, entry in enumerate(data.get("categories") or []):
        if type(entry) is not dict:
            problems.add(f"categories[{position}]", f"expected an object, got {_shown(entry)}")
            continue
        category_id = entry.get("id")
        if type(category_id) is not int:
            problems.add(f"categories[{position}].id", f"expected an int, got {_shown(category_id)}")
        elif category_id in categories:
            problems.add(f"categories[{position}].id", f"duplicate category id {category_id}")
        else:
            categories[category_id] = {"id": category_id, "name": str(entry.get("name", category_id)),
                                       "supercategory": str(entry.get("supercategory", ""))}
    return [categories[k] for k in sorted(categories)]


def load_coco_index(path: str | Path) -> CocoIndex:
    """Parse a COCO instances JSON, checking its structure in the same pass.

    Checked: `images`, `annotations` and `categories` are lists of objects; image, annotation and category ids,
    `image_id`, `category_id`, `height` and `width` are ints; `file_name` a non-empty string; `iscrowd` 0 or 1 (or
    absent); `segmentation` a list or an object (or absent). The content of a segmentation is checked per image at
    build time (an unusable one skips its image).

    Raises:
        UserError: the file is missing or is not JSON (with the parser's message), or has the wrong structure (the
            first `MAX_REPORTED_PROBLEMS` problems, one line each: `FILE: annotations[12].iscrowd: expected ...`).
    """
    path = Path(path)
    data = _read_json(path)
    problems = _Problems(path)
    records = _read_images(data, problems)
    by_image, unknown_ids, unknown_count = _group_annotations(data, records, problems)
    categories = _read_categories(data, problems)
    problems.raise_if_any()
    images = [
        ImageRecord(image_id, name, height, width, _compact_json(by_image.get(image_id, [])))
        for image_id, (name, height, width) in sorted(records.items())
    ]
    known_categories = {c["id"] for c in categories}
    unknown_categories = sum(n for cid, n in problems.category_ids.items() if cid not in known_categories)
    return CocoIndex(path, images, categories, sum(len(v) for v in by_image.values()), unknown_ids, unknown_count,
                     problems.malformed_polygons, unknown_categories, type(data.get("categories")) is list)


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
