"""The image side of a build's source fingerprint: which files the JSON lists exist, and their byte sizes.

Two hashes go into the manifest's `source`, both over `(name, byte size)` pairs only:
- `images_sha256`: the files the JSON lists, in image-id order (size -1 when missing or not a regular file). It
  decides whether a rerun may keep the published shards. It needs the JSON's file names.
- `images_folder_sha256`: every regular file at the top level of the images folder (symlinks followed), sorted by
  name. A rerun computes it *without* parsing the JSON (parsing COCO train's 448 MB takes most of a minute): when it
  matches, so does `images_sha256`, because every listed name's size is read from that same listing. Recorded only
  when every listed `file_name` is a plain top-level name; otherwise null, and reruns parse the JSON instead.

Neither modification times nor the folder's path are part of it: a copy of the same images in another place (a
moved dataset, each node's local disk in a `--num-parts` build) is the same source, gives byte-identical shards and
manifests, and does not cost a rebuild. An in-place edit that keeps a file's exact byte size goes unnoticed; rebuild
with `--overwrite` after one. Cost: one `stat` per file (measured in docs/data.md: well under a second for COCO).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wam_pipe.data.coco_index import CocoIndex

# Image files the JSON does not list are counted (`files_not_in_json`) when their suffix is one of these.
IMAGE_FILE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
MISSING = -1


@dataclass
class ImagesFingerprint:
    """What a build records about its image files.

    Attributes:
        listed_sha256: hash over (file_name, size) of the files the JSON lists, in id order.
        folder_sha256: hash over (name, size) of the folder's top-level files; None when the JSON lists names in
            subfolders (then the quick check cannot vouch for them).
        listed_missing: listed files that are missing (or not regular files).
        files_not_in_json: image files (by suffix) at the folder's top level that the JSON does not list.
    """

    listed_sha256: str
    folder_sha256: str | None
    listed_missing: int
    files_not_in_json: int

    def source_fields(self) -> dict[str, Any]:
        """The manifest `source` keys this fingerprint fills."""
        return {"images_sha256": self.listed_sha256, "images_folder_sha256": self.folder_sha256}


def scan_folder(images_dir: Path) -> dict[str, int]:
    """`name -> byte size` of the regular files at the top level of `images_dir` (symlinks followed)."""
    sizes: dict[str, int] = {}
    with os.scandir(images_dir) as entries:
        for entry in entries:
            try:
                if entry.is_file():
                    sizes[entry.name] = entry.stat().st_size
            except OSError:  # vanished meanwhile, or a dangling link: not a usable file either way
                continue
    return sizes


def folder_sha256(sizes: dict[str, int]) -> str:
    """The quick fingerprint of a folder listing (`scan_folder`)."""
    digest = hashlib.sha256()
    for name in sorted(sizes):
        digest.update(_entry_line(name, sizes[name]))
    return digest.hexdigest()


def quick_folder_sha256(images_dir: Path) -> str:
    """`folder_sha256` of `images_dir` now: what a rerun compares, without parsing the JSON."""
    return folder_sha256(scan_folder(images_dir))


def fingerprint_images(images_dir: Path, index: CocoIndex) -> ImagesFingerprint:
    """Fingerprint the files `index` lists (one folder listing plus a `stat` for names not in it)."""
    sizes = scan_folder(images_dir)
    digest = hashlib.sha256()
    missing = 0
    all_plain = True
    for record in index.images:
        name = record.file_name
        plain = _is_plain_name(name)
        all_plain = all_plain and plain
        size = sizes[name] if plain and name in sizes else _file_size(images_dir / name)
        missing += size == MISSING
        digest.update(_entry_line(name, size))
    listed = {record.file_name for record in index.images} | set(index.dropped_unannotated)
    extra = sum(1 for name in sizes if name not in listed and Path(name).suffix.lower() in IMAGE_FILE_SUFFIXES)
    folder = folder_sha256(sizes) if all_plain else None
    return ImagesFingerprint(digest.hexdigest(), folder, missing, extra)


def _is_plain_name(name: str) -> bool:
    """A name directly inside the folder (no separator, not `.`/`..`): the folder listing covers it."""
    separators = [os.sep] + ([os.altsep] if os.altsep else [])
    return name not in ("", ".", "..") and not any(sep in name for sep in separators)


def _file_size(path: Path) -> int:
    try:
        info = os.stat(path)
    except (OSError, ValueError):  # ValueError: a NUL in the name
        return MISSING
    return info.st_size if stat.S_ISREG(info.st_mode) else MISSING


def _entry_line(name: str, size: int) -> bytes:
    # repr() keeps the line unambiguous whatever the name holds (tabs, newlines, undecodable bytes).
    return f"{name!r}\t{size}\n".encode("utf-8", "surrogatepass")
