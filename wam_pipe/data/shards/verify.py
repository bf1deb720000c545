"""`shard verify`: recompute every shard's hash, decode every sample, and check the counts against the manifest."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

from wam_pipe.core.worker_pool import worker_pool
from wam_pipe.core.errors import UserError
from wam_pipe.core.progress import progress
from wam_pipe.data.location import ShardLocation
from wam_pipe.data.rle import SegmentationError, check_counts_total, counts_from_string
from wam_pipe.data.shards.build import default_workers
from wam_pipe.data.shards.manifest import read_manifest_at
from wam_pipe.data.shards.tar_io import EncodedSample, ShardFormatError, read_samples, read_samples_from

REQUIRED_FIELDS = ("image_id", "file_name", "height", "width", "orig_height", "orig_width", "annotations")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def check_sample(sample: EncodedSample, size: int) -> str | None:
    """What is wrong with one stored sample, or None. Decodes the image fully and every RLE's counts."""
    from PIL import Image

    if sample.extra_members:  # a shard build writes only these two; anything else (.pickle, .pth...) was added
        names = ", ".join(f"{sample.key}.{ext}" for ext in sample.extra_members)
        return f"unexpected members {names} (a shard build writes only the image and the .json)"

    try:
        with Image.open(io.BytesIO(sample.image)) as image:
            image.load()
            if image.size != (size, size) or image.mode != "RGB":
                return f"image is {image.mode} {image.size[0]}x{image.size[1]}, expected RGB {size}x{size}"
    except Exception as err:
        return f"image does not decode ({type(err).__name__}: {err})"
    try:
        meta = json.loads(sample.meta)
        missing = [name for name in REQUIRED_FIELDS if name not in meta]
        if missing:
            return f"JSON lacks {missing}"
        for ann in meta["annotations"]:
            rle = ann["segmentation"]
            if list(rle["size"]) != [size, size]:
                return f"annotation {ann.get('id')}: mask size {rle['size']}, expected {[size, size]}"
            check_counts_total(counts_from_string(rle["counts"]), size, size)
    except (ValueError, KeyError, TypeError, SegmentationError) as err:
        return f"bad JSON or mask ({type(err).__name__}: {err})"
    return None


def verify_shard(job: tuple[str | ShardLocation, dict[str, Any], int]) -> tuple[list[str], list[str]]:
    """One shard -> (its keys, its problems as `shard: key: message` lines)."""
    directory, entry, size = job
    if isinstance(directory, ShardLocation) and not directory.is_local:
        return _verify_remote_shard(directory, entry, size)
    path = Path(str(directory)) / entry["name"]
    name = entry["name"]
    if not path.is_file():
        return [], [f"{name}: file missing"]
    problems = []
    if path.stat().st_size != entry["bytes"]:
        problems.append(f"{name}: {path.stat().st_size} bytes, manifest says {entry['bytes']}")
    elif _sha256(path) != entry["sha256"]:
        problems.append(f"{name}: sha256 differs from the manifest's (the file changed or is damaged)")
    keys: list[str] = []
    try:
        for sample in read_samples(path):
            keys.append(sample.key)
            problem = check_sample(sample, size)
            if problem:
                problems.append(f"{name}: {sample.key}: {problem}")
    except (ShardFormatError, OSError) as err:
        problems.append(f"{name}: after key {keys[-1] if keys else '(none)'}: {err}")
    if len(keys) != entry["samples"]:
        problems.append(f"{name}: holds {len(keys)} samples, manifest says {entry['samples']}")
    return keys, problems


def _verify_remote_shard(location: ShardLocation, entry: dict[str, Any], size: int) -> tuple[list[str], list[str]]:
    """`verify_shard` for a remote shard: downloaded once into memory (hash and samples from the same bytes)."""
    name = entry["name"]
    try:
        data = location.read_bytes(name)
    except UserError as err:
        return [], [f"{name}: {err}"]
    problems = []
    if len(data) != entry["bytes"]:
        problems.append(f"{name}: {len(data)} bytes, manifest says {entry['bytes']}")
    elif hashlib.sha256(data).hexdigest() != entry["sha256"]:
        problems.append(f"{name}: sha256 differs from the manifest's (the file changed or is damaged)")
    keys: list[str] = []
    try:
        for sample in read_samples_from(io.BytesIO(data), name):
            keys.append(sample.key)
            problem = check_sample(sample, size)
            if problem:
                problems.append(f"{name}: {sample.key}: {problem}")
    except ShardFormatError as err:
        problems.append(f"{name}: after key {keys[-1] if keys else '(none)'}: {err}")
    if len(keys) != entry["samples"]:
        problems.append(f"{name}: holds {len(keys)} samples, manifest says {entry['samples']}")
    return keys, problems


def verify_shards(directory: str | Path, workers: int | None = None,
                  show_progress: bool = True) -> tuple[dict[str, Any], list[str]]:
    """Check a whole shard directory or URL; returns (manifest, problems). An empty problem list means it is sound.

    Progress (shards/s, ETA) goes to stderr: a bar on a terminal, a line every 30 s elsewhere (`show_progress`).
    """
    location = ShardLocation(directory)
    manifest = read_manifest_at(location)
    size = int(manifest["settings"]["size"])
    where: str | ShardLocation = location.spec if location.is_local else location
    jobs = [(where, entry, size) for entry in manifest["shards"]]
    workers = default_workers() if workers is None else workers
    results = []
    with progress(len(jobs), "shard verify", "shard", enabled=show_progress) as bar:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                results.append(verify_shard(job))
                bar.update(1)
        else:
            with worker_pool(min(workers, len(jobs))) as pool:
                for result in pool.imap(verify_shard, jobs, chunksize=1):  # in order, as they finish
                    results.append(result)
                    bar.update(1)
                pool.close()  # finished: let the workers exit (terminate, the `with` exit, is for errors)
                pool.join()
    problems = [line for _, shard_problems in results for line in shard_problems]
    all_keys = [key for keys, _ in results for key in keys]
    if len(set(all_keys)) != len(all_keys):
        duplicates = sorted({k for k in all_keys if all_keys.count(k) > 1})[:5]
        problems.append(f"{directory}: keys appear in more than one sample: {duplicates}")
    if not problems and len(all_keys) != manifest["totals"]["samples"]:
        problems.append(f"{directory}: {len(all_keys)} samples, manifest totals say {manifest['totals']['samples']}")
    return manifest, problems
