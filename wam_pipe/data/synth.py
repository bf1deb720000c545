"""`wam-pipe data synth`: a synthetic COCO dataset, so that wam-pipe runs (quickstart, tests) without external data.

Layout: `OUT/images/000000000001.jpg ...` (real JPEG files, q90) and `OUT/annotations.json` (COCO instances format).
Content: textured backgrounds (gradients + smooth noise + grain) with 1-6 coloured shapes (ellipses, star polygons,
rectangles, some rotated) whose outlines are the instance polygons; every 8th image (index % 8 == 3) also has an
`iscrowd` blob cluster stored as uncompressed RLE (as COCO stores crowds); every 16th image (index % 16 == 7) has no
annotations. Sizes vary per image (`min_size`..`max_size` on each side, so most are non-square).

Deterministic: image i depends only on `(seed, i)`, so any worker count gives identical files. Writing the same
dataset again is a no-op: the JSON's `info` records `images`, `seed`, `min_size`, `max_size`, `generator_version`.
The JSON is written last and atomically, so an interrupted run is simply redone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from wam_pipe.core.worker_pool import worker_pool
from wam_pipe.core.progress import progress
from wam_pipe.data import synth_shapes as shapes
from wam_pipe.data.coco_index import sample_key
from wam_pipe.core.atomic import atomic_write_bytes
from wam_pipe.core.errors import UserError
from wam_pipe.data.shards.build import default_workers

GENERATOR_VERSION = 1
JPEG_QUALITY = 90


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index, 0x53594E]))


def _bbox(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def render(index: int, seed: int, min_size: int, max_size: int) -> tuple[Image.Image, dict, list[dict]]:
    """Image `index` of the dataset: (RGB image, COCO image record, its annotations)."""
    rng = _rng(seed, index)
    width, height = (int(v) for v in rng.integers(min_size, max_size + 1, 2))
    image_id = index + 1
    canvas = shapes.textured_fill(rng, height, width, grain=rng.uniform(3, 8))
    annotations: list[dict[str, Any]] = []
    if index % 16 != 7:
        for _ in range(int(rng.integers(1, 7))):
            category, outline = shapes.random_shape(rng, width, height)
            mask = shapes.polygon_mask(outline, width, height)
            shapes.paint(canvas, mask, rng)
            polygon = [round(float(v), 2) for v in outline.reshape(-1)]
            annotations.append(_annotation(image_id, len(annotations), category, [polygon], mask, iscrowd=0))
        if index % 8 == 3:
            mask = shapes.crowd_mask(rng, width, height)
            shapes.paint(canvas, mask, rng)
            annotations.append(_annotation(image_id, len(annotations), 4, shapes.uncompressed_rle(mask), mask, 1))
    record = {"id": image_id, "file_name": f"{sample_key(image_id)}.jpg", "width": width, "height": height}
    return Image.fromarray(canvas.round().astype(np.uint8), "RGB"), record, annotations


def _annotation(image_id: int, position: int, category: int, segmentation: Any, mask: np.ndarray,
                iscrowd: int) -> dict[str, Any]:
    return {
        "id": image_id * 100 + position,  # unique and independent of the worker count
        "image_id": image_id,
        "category_id": category,
        "iscrowd": iscrowd,
        "segmentation": segmentation,
        "area": float(mask.sum()),
        "bbox": _bbox(mask),
    }


def _write_one(job: tuple[int, int, int, int, str]) -> tuple[dict, list[dict]]:
    index, seed, min_size, max_size, images_dir = job
    image, record, annotations = render(index, seed, min_size, max_size)
    image.save(Path(images_dir) / record["file_name"], format="JPEG", quality=JPEG_QUALITY)
    return record, annotations


def _info(images: int, seed: int, min_size: int, max_size: int) -> dict[str, Any]:
    return {"description": "wam-pipe synthetic COCO", "generator_version": GENERATOR_VERSION, "images": images,
            "seed": seed, "min_size": min_size, "max_size": max_size}


def is_current(images_dir: Path, annotations: Path, info: dict[str, Any]) -> bool:
    """Whether `annotations` was written by this generator with the same settings and all its images exist."""
    try:
        data = json.loads(annotations.read_text())
    except (OSError, ValueError):
        return False
    if data.get("info") != info:
        return False
    return all((images_dir / record["file_name"]).is_file() for record in data.get("images", []))


def write_synthetic_coco(images_dir: str | Path, annotations: str | Path, images: int, seed: int = 0,
                         min_size: int = 160, max_size: int = 480, workers: int | None = None) -> bool:
    """Write `images` synthetic images to `images_dir` and their COCO JSON to `annotations`.

    Returns:
        True when files were written, False when an identical dataset was already there (no-op).

    Raises:
        UserError: bad counts or sizes.
    """
    images_dir, annotations = Path(images_dir), Path(annotations)
    if images < 1:
        raise UserError(f"data synth: images must be >= 1, got {images}")
    if not 16 <= min_size <= max_size:
        raise UserError(f"data synth: need 16 <= min_size <= max_size, got {min_size}..{max_size}")
    info = _info(images, seed, min_size, max_size)
    if is_current(images_dir, annotations, info):
        return False
    images_dir.mkdir(parents=True, exist_ok=True)
    annotations.parent.mkdir(parents=True, exist_ok=True)
    jobs = [(i, seed, min_size, max_size, str(images_dir)) for i in range(images)]
    results = _run(jobs, workers)
    data = {
        "info": info,
        "licenses": [],
        "images": [record for record, _ in results],
        "annotations": [ann for _, anns in results for ann in anns],
        "categories": shapes.SHAPE_CATEGORIES,
    }
    atomic_write_bytes(annotations, json.dumps(data, separators=(",", ":")).encode())
    return True


def _run(jobs: list[tuple], workers: int | None) -> list[tuple[dict, list[dict]]]:
    workers = default_workers() if workers is None else workers
    results = []
    # Progress (images/s, ETA) on stderr: a bar on a terminal, a line every 30 s elsewhere.
    with progress(len(jobs), "data synth", "img") as bar:
        if workers <= 1 or len(jobs) < 32:
            for job in jobs:
                results.append(_write_one(job))
                bar.update(1)
            return results
        with worker_pool(workers) as pool:
            for result in pool.imap(_write_one, jobs, chunksize=8):  # in order
                results.append(result)
                bar.update(1)
            pool.close()  # finished: let the workers exit (terminate, the `with` exit, is for errors)
            pool.join()
    return results
