"""Assemble a manifest from shard done-markers, and turn a manifest into the human summary a build prints."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from wam_pipe.data.shards.manifest import FORMAT, FORMAT_VERSION, SHARD_ENTRY_KEYS, SKIP_KINDS, skip_kind

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


def assemble_manifest(
    settings: dict[str, Any],
    source: dict[str, Any],
    part: dict[str, int] | None,
    markers: list[dict[str, Any]],
    index: Any,  # CocoIndex or TarIndex: categories and unknown-image counts
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
        "shards": [{k: m[k] for k in SHARD_ENTRY_KEYS} for m in markers],
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
        lines.append(f"skipped {len(skipped)} images: {skip_breakdown(skipped)} (listed in the manifest's `skipped`)")
    if manifest["source"].get("dropped_unannotated"):
        lines.append(f"left out {manifest['source']['dropped_unannotated']} images without annotations "
                     "(drop_unannotated)")
    if manifest.get("files_not_in_json"):
        lines.append(f"ignored {manifest['files_not_in_json']} image files that the annotation JSON does not list")
    unknown = manifest.get("unknown_image_annotations", {})
    if unknown.get("count"):
        ids = ", ".join(str(i) for i in unknown.get("image_ids", []))
        lines.append(f"ignored {unknown['count']} annotations naming image ids not in the JSON's images: {ids}")
    return lines


def skip_breakdown(skipped: list[dict[str, Any]], top: int | None = None) -> str:
    """`2 x file missing; 1 x decompression bomb`: skipped images counted by `kind`, most frequent first."""
    kinds = Counter(skip_kind(entry) for entry in skipped)
    return "; ".join(f"{n} x {SKIP_KINDS[kind]}" for kind, n in kinds.most_common(top))


LISTED_SKIPS = 10  # skipped images named in the failure line; beyond that, the full list goes to a file


def skip_limit_exceeded(skipped: list[dict[str, Any]], total: int, limit: float, full_list: Path | None = None
                        ) -> str | None:
    """`skipped 6 of 13 images (46.2% > max_skipped_fraction 1.0%): 2 x ...; 1 x ...: a.jpg (reason), ...` when
    over `limit`, else None. Every kind is counted; the first `LISTED_SKIPS` images are named, and when there are
    more, all of them are written to `full_list` (JSON) and the line says where."""
    if not total or len(skipped) / total <= limit:
        return None
    named = ", ".join(f"{entry.get('file_name')} ({entry.get('reason')})" for entry in skipped[:LISTED_SKIPS])
    rest = ""
    if len(skipped) > LISTED_SKIPS:
        rest = f" and {len(skipped) - LISTED_SKIPS} more"
        if full_list is not None:
            full_list.write_text(json.dumps(skipped, indent=1) + "\n")
            rest += f" (all listed in {full_list})"
    return (f"skipped {len(skipped)} of {total} images ({len(skipped) / total:.1%} > max_skipped_fraction "
            f"{limit:.1%}): {skip_breakdown(skipped)}: {named}{rest}")
