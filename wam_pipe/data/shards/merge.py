"""`shard merge`: join the part manifests of a split build (`--num-parts P --part I`) into one `manifest.json`.

Parts must come from the same annotation file and settings and cover parts 0..P-1 exactly once. Shards that live
in another folder than the output are hard-linked there (copied across file systems). In an object store
(`s3://`, `gs://`) the parts are usually built with the same `--out URL` and the merge only writes `manifest.json`
there (last); parts in another folder of the same store are copied server-side. Because the shard plan does
not depend on P, the merged directory is the same as a whole build's: same shard files, same manifest.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from wam_pipe.data.shards.build_state import check_output_dir, create_output_dir
from wam_pipe.data.location import ShardLocation, is_url
from wam_pipe.data.shards.manifest import (
    MANIFEST_NAME, read_manifest, read_manifest_at, source_identity, write_manifest,
)
from wam_pipe.data.shards.manifest_summary import totals_of
from wam_pipe.core.errors import UserError


def find_part_manifests(inputs: list[str | Path]) -> list[Path]:
    """Part manifest files named directly, or found (`manifest.part-*.json`) in the given folders."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found.extend(sorted(item.glob("manifest.part-*-of-*.json")))
        elif item.is_file():
            found.append(item)
        else:
            raise UserError(f"{item}: not found; pass shard folders or part manifest files")
    if not found:
        raise UserError(f"{', '.join(map(str, inputs))}: no part manifests (manifest.part-*-of-*.json) found; "
                        "build parts with `wam-pipe shard build --num-parts P --part I`")
    return found


def _check_parts(parts: list[tuple[Path | str, dict[str, Any]]]) -> None:
    first_path, first = parts[0]
    for path, manifest in parts:
        if not manifest.get("part"):
            raise UserError(f"{path}: not a part manifest (no `part`); merge only part manifests")
        # The inputs' identity, not the whole `source`: parts built from copies of the images on different nodes
        # (whose folders may hold other, unlisted files) are parts of one build.
        if manifest["settings"] != first["settings"]:
            raise UserError(f"{path}: settings differ from {first_path}'s; all parts must come from one build")
        if source_identity(manifest["source"]) != source_identity(first["source"]):
            raise UserError(f"{path}: source differ from {first_path}'s; all parts must come from one build")
    count = first["part"]["count"]
    indexes = Counter(m["part"]["index"] for _, m in parts)
    duplicated = sorted(i for i, n in indexes.items() if n > 1)
    missing = sorted(set(range(count)) - set(indexes))
    if duplicated or missing or any(m["part"]["count"] != count for _, m in parts):
        raise UserError(f"part manifests do not cover parts 0..{count - 1} once each (missing {missing}, "
                        f"duplicated {duplicated}); build the missing parts first")


def _place_shard(source: Path, target: Path, expected_bytes: int) -> None:
    if not source.is_file() or source.stat().st_size != expected_bytes:
        raise UserError(f"{source}: shard missing or not the size its part manifest records; rebuild that part")
    if target.resolve() == source.resolve():
        return
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def merge_parts(inputs: list[str | Path], out: str | Path) -> tuple[Path | str, dict[str, Any]]:
    """Merge part manifests into `out/manifest.json` (a folder, or an s3:// / gs:// URL); returns (path, manifest)."""
    if is_url(out) or any(is_url(item) for item in inputs):
        return _merge_remote([str(item) for item in inputs], str(out))
    out = Path(out)
    check_output_dir(out)
    parts = [(path, read_manifest(path)) for path in find_part_manifests(inputs)]
    _check_parts(parts)
    create_output_dir(out)
    for path, manifest in parts:
        for entry in manifest["shards"]:
            _place_shard(path.parent / entry["name"], out / entry["name"], entry["bytes"])
    merged = _merged_manifest([m for _, m in parts])
    target = out / MANIFEST_NAME
    write_manifest(target, merged)
    return target, merged


def _merge_remote(inputs: list[str], out: str) -> tuple[str, dict[str, Any]]:
    """`merge_parts` in an object store: the parts' shards must already be in `out` (build every part with the same
    `--out URL`) or in another folder of the same store (copied there server-side); the manifest is uploaded last."""
    target = ShardLocation(out)
    parts: list[tuple[str, dict[str, Any]]] = []
    sources: dict[str, ShardLocation] = {}
    for item in inputs:
        if item.endswith(".json"):
            folder, name = item.rsplit("/", 1)
            names = [name]
        else:
            folder = item
            names = [n for n in ShardLocation(folder).glob("manifest.part-*-of-*.json")]
        location = ShardLocation(folder)
        for name in names:
            parts.append((location.url(name), read_manifest_at(location, name)))
            sources[location.url(name)] = location
    if not parts:
        raise UserError(f"{', '.join(inputs)}: no part manifests (manifest.part-*-of-*.json) found; build parts with "
                        "`wam-pipe shard build --num-parts P --part I --out URL`")
    _check_parts(parts)
    for url, manifest in parts:
        source = sources[url]
        names = [entry["name"] for entry in manifest["shards"]]
        found = source.sizes(names)
        for entry in manifest["shards"]:
            if found.get(entry["name"]) != entry["bytes"]:
                raise UserError(f"{source.url(entry['name'])}: shard missing or not the size its part manifest "
                                "records; rebuild (re-upload) that part")
        if source.spec.rstrip("/") != target.spec.rstrip("/"):
            if source.scheme != target.scheme:
                raise UserError(f"{url}: parts must be in the same store as {out}; build them with --out {out}")
            for name in names:
                target.copy_from(source, name)
    merged = _merged_manifest([m for _, m in parts])
    with tempfile.TemporaryDirectory(prefix="wam-merge-") as folder:
        local = Path(folder) / MANIFEST_NAME
        write_manifest(local, merged)
        target.put(local, MANIFEST_NAME)  # last: the merged set is published when its manifest appears
    return target.url(MANIFEST_NAME), merged


def _merged_manifest(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """One whole-build manifest from checked part manifests (identical to a single-machine build's)."""
    shards = sorted((entry for m in manifests for entry in m["shards"]), key=lambda entry: entry["name"])
    first = manifests[0]
    merged = {key: first[key] for key in ("format", "format_version", "settings", "source")}
    merged["part"] = None
    merged["shards"] = shards
    merged["totals"] = _merged_totals(manifests, shards)
    merged["categories"] = _merged_categories(manifests)
    merged["skipped"] = sorted((e for m in manifests for e in m["skipped"]), key=lambda e: e["image_id"])
    for key in ("unknown_image_annotations", "files_not_in_json", "encoder"):
        merged[key] = first[key]
    return merged


def _merged_totals(manifests: list[dict[str, Any]], shards: list[dict[str, Any]]) -> dict[str, int]:
    totals = totals_of(shards)
    for key in ("instances", "images_without_annotations"):
        totals[key] = sum(m["totals"][key] for m in manifests)
    return totals


def _merged_categories(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    counts: Counter = Counter()
    for manifest in manifests:
        counts.update({c["id"]: c["instances"] for c in manifest["categories"]})
    return [{**c, "instances": counts[c["id"]]} for c in manifests[0]["categories"]]
