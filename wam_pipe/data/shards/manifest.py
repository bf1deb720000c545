"""`manifest.json`: the record of a finished shard build, written last and atomically.

Format (version 1; see docs/data.md):
```
{"format": "wam-pipe-shards", "format_version": 1,
 "settings": {"size", "samples_per_shard", "image_format", "quality", "jpeg_subsampling"},
 "source": {"annotations_file", "annotations_sha256", "image_count", "annotation_count",
            "images_sha256", "images_folder_sha256", "dropped_unannotated" (only with --drop-unannotated)},
 "part": {"index", "count"} | null,          # set on a part manifest (`--num-parts`), null once merged/whole
 "shards": [{"name", "samples", "bytes", "sha256"}, ...],
 "totals": {"shards", "samples", "bytes", "instances", "images_without_annotations"},
 "categories": [{"id", "name", "supercategory", "instances"}, ...],
 "skipped": [{"image_id", "file_name", "kind", "reason"}, ...],
 "unknown_image_annotations": {"count", "image_ids"},
 "files_not_in_json": int,
 "encoder": {"pillow", "libjpeg_turbo", "pycocotools"}}
```
`source.images_*` and `skipped[].kind` were added within version 1 (readers ignore keys they do not know; manifests
without them stay readable). A rerun keeps the shards when `settings` and `source_identity` match; `encoder` is
informative only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wam_pipe.core.atomic import atomic_write_bytes
from wam_pipe.data.location import RemoteNotFound, ShardLocation
from wam_pipe.core.errors import UserError

MANIFEST_NAME = "manifest.json"
FORMAT = "wam-pipe-shards"
FORMAT_VERSION = 1


def part_suffix(part: int | None, num_parts: int | None) -> str:
    """`""` for a whole build, `.part-0001-of-0004` for part 1 of 4 (manifest and state file names)."""
    if part is None or not num_parts or num_parts == 1:
        return ""
    return f".part-{part:04d}-of-{num_parts:04d}"


def manifest_path(out: Path, part: int | None = None, num_parts: int | None = None) -> Path:
    suffix = part_suffix(part, num_parts)
    return Path(out) / (f"manifest{suffix}.json" if suffix else MANIFEST_NAME)


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Write a manifest atomically (temp name, fsync, rename), deterministic key order and spacing."""
    atomic_write_bytes(Path(path), (json.dumps(manifest, indent=1) + "\n").encode())


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read and check a manifest (a file, or a shard directory holding `manifest.json`).

    Raises:
        UserError: missing, not JSON, or not a wam-pipe shard manifest of a known version.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise UserError(f"{path}: no shard manifest; build shards with `wam-pipe shard build` (or merge the parts)")
    return parse_manifest(path.read_bytes(), str(path))


def read_manifest_at(location: ShardLocation, name: str = MANIFEST_NAME) -> dict[str, Any]:
    """Read and check the manifest `name` of a shard location (a local folder or a URL; see `data/location.py`).

    Raises:
        UserError: missing (or unreachable, forbidden: one line naming the URL), or not a valid manifest.
    """
    if location.is_local:
        return read_manifest(location.path / name)
    url = location.url(name)
    try:
        data = location.read_bytes(name)
    except RemoteNotFound:
        raise UserError(f"{url}: no shard manifest; build (or upload) shards with `wam-pipe shard build --out "
                            f"{location.spec}` (the manifest is written last)") from None
    return parse_manifest(data, url)


def parse_manifest(data: bytes, where: str) -> dict[str, Any]:
    """Parse and check manifest bytes read from `where` (a path or URL, for messages)."""
    try:
        manifest = json.loads(data.decode())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{where}: manifest is not valid JSON ({err}); rebuild with `wam-pipe shard build --overwrite`")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{where}: not a wam-pipe shard manifest; point at a directory made by `wam-pipe shard build`")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"{where}: manifest format_version {manifest.get('format_version')} is not supported "
            f"(this wam-pipe reads {FORMAT_VERSION}); rebuild the shards with this version"
        )
    return manifest


def carries_instances(manifest: dict[str, Any]) -> bool:
    """Whether a manifest's samples carry instance masks: false for a build from an image folder without
    annotations (`source.instances: false`); manifests without the key (COCO, older builds) carry them."""
    return bool((manifest.get("source") or {}).get("instances", True))


# Short categories of skipped images (`kind`, recorded next to each one's full `reason`) and how summaries name them.
SKIP_KINDS = {
    "missing": "file missing",
    "corrupt": "corrupt or truncated image",
    "bomb": "decompression bomb",
    "size": "size differs from the JSON",
    "annotation": "unusable segmentation",
    "json": "unusable annotation JSON",
    "other": "other problem",
}


def skip_kind(entry: dict[str, Any]) -> str:
    """The `kind` of a manifest `skipped` entry; inferred from `reason` for manifests written before `kind`."""
    if entry.get("kind") in SKIP_KINDS:
        return entry["kind"]
    reason = str(entry.get("reason", ""))
    prefixes = {"file missing": "missing", "corrupt or truncated": "corrupt", "decompression bomb": "bomb",
                "image is ": "size", "annotation ": "annotation"}
    return next((kind for prefix, kind in prefixes.items() if reason.startswith(prefix)), "other")


# The keys of a manifest's `shards` entries (a subset of each shard's done-marker).
SHARD_ENTRY_KEYS = ("name", "samples", "bytes", "sha256")

# The `source` keys that identify the inputs (the rest is descriptive, or a quick proxy: `images_folder_sha256`).
SOURCE_IDENTITY_KEYS = ("annotations_sha256", "images_sha256")


def source_identity(source: dict[str, Any] | None) -> dict[str, Any]:
    """The part of a manifest's (or build state's) `source` that decides whether two builds share their inputs."""
    source = source if isinstance(source, dict) else {}
    return {key: source.get(key) for key in SOURCE_IDENTITY_KEYS}


def same_build(recorded: dict[str, Any], settings: dict[str, Any], source: dict[str, Any]) -> bool:
    """Whether a recorded build (a manifest, or an unfinished build's state) has these settings and inputs.

    A record from before image fingerprints (no `images_sha256`) is judged by its annotation file alone, as it was
    when it was written (the rule `published.py` applies to such manifests).
    """
    if recorded.get("settings") != settings:
        return False
    old, new = source_identity(recorded.get("source")), source_identity(source)
    if old["images_sha256"] is None:
        return old["annotations_sha256"] == new["annotations_sha256"]
    return old == new


def describe_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """`key: old -> new` for the keys that differ (for the refusal message)."""
    keys = sorted(set(old) | set(new))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))
