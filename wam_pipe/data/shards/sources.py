"""The three sources a build reads, behind one interface: what identifies them, how they are indexed.

- `coco`: `images` + `annotations` (an instances JSON): `CocoIndex`, identified by the JSON's sha256 and the listed
  files' (name, size) fingerprint.
- `images`: a folder alone: `load_folder_index` (every image, recursively, no instances), identified by the files'
  (name, size) fingerprint; its manifest's `source` says `"instances": false`.
- `sa1b`: SA-1B tar files: `TarIndex` from the tars' headers, identified by (tar name, size) of each tar.

Each index has `images` (records with `id`, `key`, `file_name`), `categories`, `annotation_count`,
`unknown_image_ids` and `unknown_annotation_count`, so planning, state, markers and the manifest are shared.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from wam_pipe.core.errors import UserError
from wam_pipe.data.coco_index import CocoIndex, load_coco_index, sha256_file
from wam_pipe.data.folder_index import load_folder_index
from wam_pipe.data.sa1b_index import TarIndex, list_sa1b_tars, resolve_tars, tars_fingerprint
from wam_pipe.data.shards.build_state import BuildConfig
from wam_pipe.data.shards.fingerprint import ImagesFingerprint, fingerprint_images


def annotations_sha256(config: BuildConfig) -> str | None:
    """The annotation file's sha256 (COCO), else None."""
    return sha256_file(config.annotations) if config.kind == "coco" else None


def load_index(config: BuildConfig) -> CocoIndex | TarIndex:
    """Parse / list the source once (the JSON, the folder's headers, or the tars' headers)."""
    if config.kind == "sa1b":
        return list_sa1b_tars(config.sa1b or [])
    if config.kind == "images":
        return load_folder_index(config.images)
    index = load_coco_index(config.annotations)
    if config.drop_unannotated:  # as the reference's loader: an image without annotations is never seen
        dropped = tuple(r.file_name for r in index.images if r.annotations_json == b"[]")
        index = dataclasses.replace(index, images=[r for r in index.images if r.annotations_json != b"[]"],
                                    dropped_unannotated=dropped)
        if not index.images:
            raise UserError(f"{config.annotations}: no image has an annotation; build without --drop-unannotated")
    return index


def fingerprint_source(config: BuildConfig, index: CocoIndex | TarIndex) -> ImagesFingerprint:
    """The (name, size) fingerprint of the image files, or of the tars."""
    if isinstance(index, TarIndex):
        return ImagesFingerprint(index.fingerprint(), None, 0, 0)
    return fingerprint_images(config.images, index)


def quick_tars_fingerprint(config: BuildConfig) -> str:
    """The tars' fingerprint from `stat` alone (a rerun's check: no header is read)."""
    tars = resolve_tars(config.sa1b or [])
    return tars_fingerprint(tars, [os.stat(path).st_size for path in tars])


def source_record(config: BuildConfig, index: CocoIndex | TarIndex, sha: str | None,
                  images: ImagesFingerprint) -> dict[str, Any]:
    """The manifest's `source`. COCO's keeps its original keys (published COCO builds stay up to date)."""
    if config.kind == "coco":
        return {"annotations_file": config.annotations.name, "annotations_sha256": sha,
                "image_count": len(index.images), "annotation_count": index.annotation_count,
                **images.source_fields(),
                # only when set, so that published COCO builds keep their `source` unchanged
                **({"dropped_unannotated": len(index.dropped_unannotated)} if index.dropped_unannotated else {})}
    common = {"annotations_file": None, "annotations_sha256": None, "image_count": len(index.images)}
    if isinstance(index, TarIndex):
        return {"kind": "sa1b", "instances": True, **common, "tars": [path.name for path in index.tars],
                "ignored_members": index.ignored_members, **images.source_fields()}
    return {"kind": "images", "instances": False, **common, "annotation_count": 0, **images.source_fields()}

