"""A rerun over a published build: refuse a different build, confirm an up-to-date one, or find what to repair.

Checks, cheapest first, writing nothing:
1. settings and the annotation file's sha256 (else refused: the output holds another build);
2. the images: the quick folder fingerprint, and only when that differs the exact one over the files the JSON lists,
   which needs the JSON parsed (else refused: the images changed). Manifests written before image fingerprints
   existed are judged by 1 alone, as they were then;
3. the published skipped images against this run's `max_skipped_fraction` (exit 1, as a fresh build);
4. the shards' sizes (not their hashes: that is `shard verify`). Missing or wrong-size shards are a resume: the
   caller rebuilds just those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wam_pipe.data.shards.build_state import BuildConfig
from wam_pipe.data.coco_index import CocoIndex
from wam_pipe.data.shards.fingerprint import ImagesFingerprint, quick_folder_sha256
from wam_pipe.data.shards.sources import fingerprint_source, load_index, quick_tars_fingerprint
from wam_pipe.data.shards.manifest import describe_difference
from wam_pipe.data.shards.manifest_summary import skip_limit_exceeded
from wam_pipe.core.errors import RunFailure, UserError

REFUSAL_FIX = "; pass --overwrite (overwrite: true) to replace it, or choose another output folder"


@dataclass
class PublishedBuild:
    """An existing manifest that matches this run's inputs and settings.

    Attributes:
        manifest: the manifest as published.
        damaged: names of its shards that are missing or not the recorded size (to rebuild).
        index: the parsed JSON when checking the images needed it, else None.
        fingerprint: the full image fingerprint when checking the images needed it (with `index`), else None.
        refreshed: the manifest with `source.images_folder_sha256` and `files_not_in_json` brought up to date, when
            files the JSON does not list changed since the build (else None).
    """

    manifest: dict[str, Any]
    damaged: list[str] = field(default_factory=list)
    index: CocoIndex | None = None
    fingerprint: ImagesFingerprint | None = None
    refreshed: dict[str, Any] | None = None


def check_published(config: BuildConfig, manifest: dict[str, Any], annotations_sha256: str) -> PublishedBuild:
    """Run checks 1-4 on an existing manifest for `config`.

    Raises:
        UserError: the manifest is of another build (other settings, annotation file or images).
        RunFailure: the published build skipped more images than `config.max_skipped_fraction` allows.
    """
    _refuse_other_build(config, manifest, annotations_sha256)
    index, fingerprint, refreshed = _check_images(config, manifest)
    _enforce_published_skip_limit(config, manifest)
    damaged = [s["name"] for s in manifest["shards"] if not _has_size(config.out / s["name"], s["bytes"])]
    return PublishedBuild(manifest, damaged, index, fingerprint, refreshed)


def _refuse_other_build(config: BuildConfig, manifest: dict[str, Any], annotations_sha256: str) -> None:
    recorded_sha = (manifest.get("source") or {}).get("annotations_sha256")
    diff = describe_difference(
        {**(manifest.get("settings") or {}), "annotations_sha256": recorded_sha},
        {**config.settings(), "annotations_sha256": annotations_sha256},
    )
    if diff:
        raise UserError(f"{config.out}: holds shards built differently ({diff})" + REFUSAL_FIX)


def _check_images(
    config: BuildConfig, manifest: dict[str, Any],
) -> tuple[CocoIndex | None, ImagesFingerprint | None, dict[str, Any] | None]:
    """(index, fingerprint, refreshed manifest), each None when the check did not need it."""
    source = manifest.get("source") or {}
    recorded = source.get("images_sha256")
    if recorded is None:  # a manifest from before image fingerprints
        return None, None, None
    if config.kind == "sa1b":  # (tar name, size) from `stat` alone: no header is read on a no-op rerun
        if quick_tars_fingerprint(config) != recorded:
            raise UserError(f"{config.out}: holds shards built from other SA-1B tars (a tar was added, removed or "
                            "changed size since that build)" + REFUSAL_FIX)
        return None, None, None
    folder = source.get("images_folder_sha256")
    if folder is not None and quick_folder_sha256(config.images) == folder:
        return None, None, None
    index = load_index(config)
    fingerprint = fingerprint_source(config, index)
    if fingerprint.listed_sha256 != recorded:
        listed = f"the files {config.annotations.name} lists" if config.annotations is not None else "the images"
        raise UserError(
            f"{config.out}: holds shards built from other images: {listed} under "
            f"{config.images} changed since that build (a file appeared, vanished or changed size; now "
            f"{fingerprint.listed_missing} of {len(index.images)} are missing)" + REFUSAL_FIX
        )
    refreshed = {**manifest, "source": {**source, **fingerprint.source_fields()},
                 "files_not_in_json": fingerprint.files_not_in_json}
    return index, fingerprint, (refreshed if refreshed != manifest else None)


def _enforce_published_skip_limit(config: BuildConfig, manifest: dict[str, Any]) -> None:
    skipped = manifest.get("skipped", [])
    total = manifest["totals"]["samples"] + len(skipped)
    exceeded = skip_limit_exceeded(skipped, total, config.max_skipped_fraction)
    if exceeded:
        raise RunFailure(
            f"{config.source_label}: the published build in {config.out} {exceeded}; fix those images, then rebuild "
            "with --overwrite (or raise --max-skipped-fraction)"
        )


def _has_size(path: Path, expected_bytes: int) -> bool:
    try:
        return path.stat().st_size == expected_bytes
    except OSError:
        return False
