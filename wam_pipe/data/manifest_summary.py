"""Assemble a manifest from shard done-markers, and turn a manifest into the human summary a build prints."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from wam_pipe.data.coco_index import CocoIndex
from wam_pipe.data.manifest import FORMAT, FORMAT_VERSION

MAX_LISTED_IDS = 20


def encoder_versions() -> dict[str, str | None]:
    """Library versions that shape the stored bytes (informative; the no-op check ignores them)."""
    import PIL
    import PIL.features
    import pycocotools

    return {
        "pillow": PIL.__version__,
        "libjpeg_turbo": PIL.features.version_feature("libjpeg_turbo"),
        "pycocotools": getattr(pycocotools, "__version__", None),
    }


def count_files_not_in_json(images_dir: Path, index: CocoIndex, suffixes: set[str]) -> int:
    """Image files in `images_dir` (top level) that the JSON does not list; they are ignored."""
    listed = {record.file_name for record in index.images}
    with os.scandir(images_dir) as entries:
        return sum(
            1 for e in entries
            if e.is_file() and Path(e.name).suffix.lower() in suffixes and e.name not in listed
        )


def assemble_manifest(
    settings: dict[str, Any],
    source: dict[str, Any],
    part: dict[str, int] | None,
    markers: list[dict[str, Any]],
    index: CocoIndex,
    files_not_in_json: int,
) -> dict[str, Any]:
    """The manifest of a whole build or a part, from its shards' done-markers (in shard order)."""
    category_counts: Counter = Counter()
    for marker in markers:
        category_counts.update(marker["category_counts"])
    categories = [{**c, "instances": category_counts.get(str(c["id"]), 0)} for c in index.categories]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "settings": settings,
        "source": source,
        "part": part,
        "shards": [{k: m[k] for k in ("name", "samples", "bytes", "sha256")} for m in markers],
        "totals": totals_of(markers),
        "categories": categories,
        "skipped": [entry for m in markers for entry in m["skipped"]],
        "unknown_image_annotations": {
            "count": index.unknown_annotation_count,
            "image_ids": index.unknown_image_ids[:MAX_LISTED_IDS],
        },
        "files_not_in_json": files_not_in_json,
        "encoder": encoder_versions(),
    }


def totals_of(entries: list[dict[str, Any]]) -> dict[str, int]:
    """Totals over shard markers (or over part manifests' totals, which carry the same keys)."""
    return {
        "shards": len(entries),
        "samples": sum(e["samples"] for e in entries),
        "bytes": sum(e["bytes"] for e in entries),
        "instances": sum(e.get("instances", 0) for e in entries),
        "images_without_annotations": sum(e.get("images_without_annotations", 0) for e in entries),
    }


def summary_lines(manifest: dict[str, Any], where: str) -> list[str]:
    """What a build prints at the end: counts, skipped images by reason, ignored files, unknown image ids."""
    totals = manifest["totals"]
    lines = [
        f"{where}: {totals['shards']} shards, {totals['samples']} samples, {totals['bytes'] / 1e6:.1f} MB, "
        f"{totals['instances']} instances, {totals['images_without_annotations']} images without annotations"
    ]
    skipped = manifest.get("skipped", [])
    if skipped:
        reasons = Counter(entry["reason"].split(" (")[0] for entry in skipped)
        detail = "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common())
        lines.append(f"skipped {len(skipped)} images: {detail} (listed in the manifest's `skipped`)")
    if manifest.get("files_not_in_json"):
        lines.append(f"ignored {manifest['files_not_in_json']} image files that the annotation JSON does not list")
    unknown = manifest.get("unknown_image_annotations", {})
    if unknown.get("count"):
        ids = ", ".join(str(i) for i in unknown.get("image_ids", []))
        lines.append(f"ignored {unknown['count']} annotations naming image ids not in the JSON's images: {ids}")
    return lines
