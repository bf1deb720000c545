"""`wam-pipe data synth --format sa1b`: small SA-1B-style tar files, for tests and the docs' example.

Layout: `OUT/sa_000000.tar`, `OUT/sa_000001.tar`, ... each holding `per_tar` pairs `sa_N.jpg` + `sa_N.json` (image
ids 1..N, consecutive across tars, in that member order: `.jpg` then `.json`, as SA-1B). Each JSON is
`{"image": {image_id, width, height, file_name}, "annotations": [{id, segmentation: {size: [h, w], counts: str},
bbox, area, predicted_iou, stability_score, crop_box, point_coords}, ...]}` with compressed RLE made by
pycocotools from the shapes painted into the JPEG (real masks, real JPEGs at quality 90).

Deterministic: image i depends only on `(seed, i)` and the sizes; tar members have mtime 0, so the same arguments
give byte-identical tars. Each tar is written to a temp name and renamed; an existing tar of the right name is
rewritten (the command is cheap and meant for small sets).
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from wam_pipe.core.errors import UserError
from wam_pipe.data import synth_shapes as shapes
from wam_pipe.core.atomic import atomic_write_bytes

JPEG_QUALITY = 90


def tar_name(index: int) -> str:
    return f"sa_{index:06d}.tar"


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index, 0x5A1B]))


def render_sa1b(image_id: int, seed: int, width: int, height: int, masks: int) -> tuple[bytes, bytes]:
    """(JPEG bytes, JSON bytes) of synthetic SA-1B image `image_id`: `masks` shapes, each one annotation."""
    rng = _rng(seed, image_id)
    canvas = shapes.textured_fill(rng, height, width, grain=rng.uniform(3, 8))
    annotations: list[dict[str, Any]] = []
    for position in range(masks):
        _, outline = shapes.random_shape(rng, width, height)
        mask = shapes.polygon_mask(outline, width, height)  # (H, W) 0/1
        shapes.paint(canvas, mask, rng)
        rle = mask_utils.encode(np.asfortranarray(mask[:, :, None]))[0]
        x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
        annotations.append({
            "id": image_id * 1000 + position,
            "segmentation": {"size": [height, width], "counts": rle["counts"].decode("ascii")},
            "bbox": [x, y, w, h],
            "area": int(mask_utils.area(rle)),
            "predicted_iou": round(float(rng.uniform(0.7, 1.0)), 4),
            "stability_score": round(float(rng.uniform(0.8, 1.0)), 4),
            "crop_box": [0.0, 0.0, float(width), float(height)],
            "point_coords": [[x + w / 2, y + h / 2]],
        })
    buffer = io.BytesIO()
    Image.fromarray(canvas.round().astype(np.uint8), "RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
    name = f"sa_{image_id}.jpg"
    meta = {"image": {"image_id": image_id, "width": width, "height": height, "file_name": name},
            "annotations": annotations}
    return buffer.getvalue(), json.dumps(meta, separators=(",", ":")).encode()


def add_member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    """One regular member with fixed metadata (deterministic bytes)."""
    member = tarfile.TarInfo(name)
    member.size, member.mtime, member.mode = len(data), 0, 0o644
    archive.addfile(member, io.BytesIO(data))


def write_synthetic_sa1b(out: str | Path, images: int, per_tar: int = 100, seed: int = 0, width: int = 320,
                         height: int = 240, masks: int = 8) -> list[Path]:
    """Write `images` synthetic SA-1B images into tars of `per_tar` pairs under `out`; returns the tar paths.

    Raises:
        UserError: bad counts or sizes.
    """
    checks = [(images >= 1, f"images must be >= 1, got {images}"),
              (per_tar >= 1, f"per_tar must be >= 1, got {per_tar}"),
              (width >= 16 and height >= 16, f"width and height must be >= 16, got {width}x{height}"),
              (masks >= 0, f"masks must be >= 0, got {masks}")]
    for ok, message in checks:
        if not ok:
            raise UserError(f"data synth --format sa1b: {message}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; pass a folder for the tars (--out)")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for tar_index, first in enumerate(range(1, images + 1, per_tar)):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
            for image_id in range(first, min(first + per_tar, images + 1)):
                jpeg, meta = render_sa1b(image_id, seed, width, height, masks)
                add_member(archive, f"sa_{image_id}.jpg", jpeg)
                add_member(archive, f"sa_{image_id}.json", meta)
        path = out / tar_name(tar_index)
        atomic_write_bytes(path, buffer.getvalue())
        paths.append(path)
    return paths
