"""`shard inspect`: what a shard directory holds (from its manifest), and a picture of samples with masks overlaid."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from wam_pipe.data.shards.manifest import read_manifest
from wam_pipe.data.shards.tar_io import EncodedSample, read_samples
from wam_pipe.core.errors import UserError
from wam_pipe.data.rle import decode_rles

# Distinct overlay colours (RGB), cycled over the instances of a sample.
PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]
HISTOGRAM_WIDTH = 40
GRID_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}  # picture suffix -> PIL format


def describe(directory: str | Path) -> list[str]:
    """Counts, sizes and the category histogram of a shard directory, as printable lines."""
    manifest = read_manifest(directory)
    settings, totals, shards = manifest["settings"], manifest["totals"], manifest["shards"]
    shard_bytes = [s["bytes"] for s in shards] or [0]
    samples = max(totals["samples"], 1)
    lines = [
        f"{directory}: {totals['shards']} shards, {totals['samples']} samples of {settings['size']}x{settings['size']} "
        f"{settings['image_format']}" + (f" q{settings['quality']}" if settings.get("quality") else ""),
        f"bytes: {totals['bytes'] / 1e6:.1f} MB total, {totals['bytes'] / samples / 1e3:.1f} KB per sample, "
        f"shards {min(shard_bytes) / 1e6:.1f}-{max(shard_bytes) / 1e6:.1f} MB",
        f"instances: {totals['instances']} ({totals['instances'] / samples:.2f} per sample), "
        f"{totals['images_without_annotations']} samples without annotations, "
        f"{len(manifest['skipped'])} images skipped",
        f"source: {_source_line(manifest['source'])}",
    ]
    return lines + category_histogram(manifest["categories"])


def _source_line(source: dict[str, Any]) -> str:
    """`instances.json (80 images, sha256 1a2b...)`, `SA-1B: 3 tars (...)` or `image folder, no instances (...)`."""
    count = f"{source['image_count']} images"
    if source.get("kind") == "sa1b":
        return f"SA-1B: {len(source.get('tars', []))} tars ({count})"
    if source.get("kind") == "images":
        return f"image folder without annotations, no instances ({count})"
    return f"{source['annotations_file']} ({count}, sha256 {str(source['annotations_sha256'])[:12]}...)"


def category_histogram(categories: list[dict[str, Any]]) -> list[str]:
    """One bar per category with instances, most frequent first."""
    used = sorted((c for c in categories if c.get("instances")), key=lambda c: -c["instances"])
    if not used:
        return ["categories: no instances"]
    top = used[0]["instances"]
    width = max(len(c["name"]) for c in used)
    lines = ["categories (instances):"]
    for c in used:
        bar = "#" * max(1, round(HISTOGRAM_WIDTH * c["instances"] / top))
        lines.append(f"  {c['name']:<{width}} {c['instances']:>8} {bar}")
    return lines


def pick_samples(directory: Path, manifest: dict[str, Any], count: int) -> list[EncodedSample]:
    """`count` samples spread over the shards (the first few of each, in shard order)."""
    shards = [s for s in manifest["shards"] if s["samples"]]
    if not shards:
        return []
    per_shard = max(1, math.ceil(count / len(shards)))
    picked: list[EncodedSample] = []
    for shard in shards:
        picked.extend(read_samples(directory / shard["name"], 0, per_shard))
        if len(picked) >= count:
            break
    return picked[:count]


def overlay(sample: EncodedSample, alpha: float = 0.45) -> np.ndarray:
    """A sample's image `(S, S, 3)` uint8 with each instance tinted in its own colour and outlined."""
    from wam_pipe.data.readers.decode import decode_image  # imports torch: only the pictures need it

    image = decode_image(sample.image, "pil").permute(1, 2, 0).numpy().astype(np.float32)  # (S, S, 3)
    annotations = json.loads(sample.meta)["annotations"]
    if annotations:
        masks = decode_rles([a["segmentation"] for a in annotations]).astype(bool)  # (S, S, N)
        for i in range(masks.shape[2]):
            colour = np.array(PALETTE[i % len(PALETTE)], dtype=np.float32)
            mask = masks[:, :, i]
            image[mask] = (1 - alpha) * image[mask] + alpha * colour
            edge = mask & ~_eroded(mask)
            image[edge] = colour
    return image.round().clip(0, 255).astype(np.uint8)


def _eroded(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return inner


def check_grid_target(out: str | Path, count: int) -> None:
    """Reject a grid request that cannot be written, before any work.

    Raises:
        UserError: `count` < 1, `out` is a folder, or its suffix is not .png / .jpg / .jpeg.
    """
    out = Path(out)
    if count < 1:
        raise UserError(f"shard inspect: --samples must be >= 1, got {count}")
    if out.is_dir():
        raise UserError(f"{out}: is a folder; pass a file name for the picture, e.g. {out / 'grid.png'}")
    if out.suffix.lower() not in GRID_FORMATS:
        raise UserError(f"{out}: cannot write a picture of type {out.suffix or '(no suffix)'!r}; name a .png (or "
                        ".jpg) file")


def render_grid(directory: str | Path, out: str | Path, count: int = 16) -> int:
    """Write a grid picture of `count` samples with their masks overlaid; returns how many were drawn (0: the build
    holds no samples, and nothing is written).

    Raises:
        UserError: see `check_grid_target`; or `out` cannot be written.
    """
    from PIL import Image, ImageDraw

    check_grid_target(out, count)
    directory, out = Path(directory), Path(out)
    manifest = read_manifest(directory)
    samples = pick_samples(directory, manifest, count)
    if not samples:
        return 0
    size = int(manifest["settings"]["size"])
    columns = math.ceil(math.sqrt(len(samples)))
    rows = math.ceil(len(samples) / columns)
    grid = Image.new("RGB", (columns * size, rows * size), (32, 32, 32))
    for position, sample in enumerate(samples):
        tile = Image.fromarray(overlay(sample))
        ImageDraw.Draw(tile).text((4, 4), sample.key, fill=(255, 255, 255))
        grid.paste(tile, ((position % columns) * size, (position // columns) * size))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        grid.save(out, format=GRID_FORMATS[out.suffix.lower()])
    except OSError as err:
        raise UserError(f"{out}: cannot write the picture ({err.strerror or err}); pass another --out") from None
    return len(samples)
