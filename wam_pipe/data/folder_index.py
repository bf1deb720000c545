"""An annotation-free image folder as a `CocoIndex`: every image file, recursively, with an empty instance list.

Files are those whose suffix is a common image format (`.jpg .jpeg .png .bmp .gif .tif .tiff .webp`, any case),
found recursively (symlinked files followed, hidden files and folders skipped), sorted by their path relative to the
folder (POSIX separators), and numbered 1..N in that order (the image ids, so the sample keys are stable for a
given folder). Each file's header is read for its size (no decode); a file whose header PIL cannot read stays in
the index with size 0x0, so the build skips it as `corrupt` and lists it in the manifest.

Raises `UserError` when the folder holds no image whose header can be read.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from wam_pipe.core.errors import UserError
from wam_pipe.data.coco_index import CocoIndex, ImageRecord

FOLDER_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def image_files(folder: Path) -> list[str]:
    """Relative POSIX paths of the image files under `folder`, sorted."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in FOLDER_IMAGE_SUFFIXES:
                found.append(Path(root, name).relative_to(folder).as_posix())
    return sorted(found)


def _header_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header, or (0, 0) when PIL cannot read it."""
    try:
        with Image.open(path) as image:
            return image.size
    except Exception:  # PIL raises many types for damaged or foreign files
        return 0, 0


def load_folder_index(folder: str | Path) -> CocoIndex:
    """Index every image file of `folder` (see the module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: image folder not found; pass a folder of images (--images)")
    records = []
    for image_id, name in enumerate(image_files(folder), start=1):
        width, height = _header_size(folder / name)
        records.append(ImageRecord(image_id, name, height, width))
    if not any(r.width and r.height for r in records):
        what = f"none of its {len(records)} image files can be read" if records else "it holds no image files"
        raise UserError(f"{folder}: no readable images ({what}; looked for "
                        f"{', '.join(sorted(FOLDER_IMAGE_SUFFIXES))}, recursively); pass a folder of photos")
    return CocoIndex(folder, records, categories=[])
