"""Fixtures of the data-path tests: a small synthetic COCO set, its shards, and a COCO set full of bad inputs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wam_pipe.data.shards.build import build_shards
from wam_pipe.data.shards.build_state import BuildConfig
from wam_pipe.data.synth import write_synthetic_coco

SYNTH_IMAGES = 36


@pytest.fixture(scope="session")
def synth_coco(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """36 synthetic images (80-200 px): (images folder, annotations JSON)."""
    root = tmp_path_factory.mktemp("synth")
    write_synthetic_coco(root / "images", root / "annotations.json", SYNTH_IMAGES, seed=1, min_size=80,
                         max_size=200, workers=1)
    return root / "images", root / "annotations.json"


@pytest.fixture(scope="session")
def synth_shards(synth_coco: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic set built into 9 shards of 4 samples at 64 px (small and quick to decode)."""
    images, annotations = synth_coco
    out = tmp_path_factory.mktemp("shards")
    build_shards(BuildConfig(images, annotations, out, size=64, samples_per_shard=4, workers=1, progress=False))
    return out


def _jpeg(array: np.ndarray, mode: str | None = None, **kw) -> bytes:
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **kw)
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _square_polygon(w: int, h: int) -> list[list[float]]:
    return [[w * 0.25, h * 0.25, w * 0.75, h * 0.25, w * 0.75, h * 0.75, w * 0.25, h * 0.75]]


def write_bad_inputs(root: Path) -> dict[str, int]:
    """A COCO folder exercising every input case; returns {case name: image id}.

    Cases: good, grayscale, cmyk, png_alpha, palette_alpha, crowd (uncompressed RLE), no_annotations (all usable);
    corrupt, truncated, missing, bomb, size_mismatch, bad_rle (skipped). Also one file the JSON does not list and
    one annotation naming an unknown image id.
    """
    images = root / "images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)
    cases: dict[str, tuple[str, bytes | None, int, int]] = {
        "good": ("good.jpg", _jpeg(rgb), 120, 90),
        "grayscale": ("gray.jpg", _jpeg(rgb, "L"), 120, 90),
        "cmyk": ("cmyk.jpg", _jpeg(rgb, "CMYK"), 120, 90),
        "png_alpha": ("alpha.png", _png(Image.fromarray(np.dstack([rgb, rgb[..., :1]]), "RGBA")), 120, 90),
        "palette_alpha": ("palette.png", _png(_palette_with_transparency(rgb)), 120, 90),
        "crowd": ("crowd.jpg", _jpeg(rgb), 120, 90),
        "no_annotations": ("empty.jpg", _jpeg(rgb), 120, 90),
        "corrupt": ("corrupt.jpg", b"\xff\xd8\xff\xe0 not really a jpeg" + bytes(200), 120, 90),
        "truncated": ("truncated.jpg", _jpeg(rgb)[:700], 120, 90),
        "missing": ("missing.jpg", None, 120, 90),
        "bomb": ("bomb.png", _png(Image.new("1", (10000, 10000))), 10000, 10000),
        "size_mismatch": ("mismatch.jpg", _jpeg(rgb), 100, 90),
        "bad_rle": ("badrle.jpg", _jpeg(rgb), 120, 90),
    }
    ids = {name: position + 1 for position, name in enumerate(cases)}
    records, annotations = [], []
    for name, (file_name, data, width, height) in cases.items():
        if data is not None:
            (images / file_name).write_bytes(data)
        records.append({"id": ids[name], "file_name": file_name, "width": width, "height": height})
        if name != "no_annotations":
            annotations.append(_annotation(len(annotations) + 1, ids[name], _square_polygon(width, height), 0))
    crowd = np.zeros((90, 120), dtype=np.uint8)
    crowd[10:40, 60:100] = 1
    from wam_pipe.data.synth_shapes import uncompressed_rle

    annotations.append(_annotation(len(annotations) + 1, ids["crowd"], uncompressed_rle(crowd), 1))
    annotations.append(_annotation(len(annotations) + 1, ids["bad_rle"], {"size": [90, 120], "counts": [5, 7]}, 1))
    annotations.append(_annotation(len(annotations) + 1, 9999, _square_polygon(120, 90), 0))  # unknown image
    (images / "not_listed.jpg").write_bytes(_jpeg(rgb))
    data = {"images": records, "annotations": annotations,
            "categories": [{"id": 1, "name": "thing", "supercategory": "x"}]}
    (root / "annotations.json").write_text(json.dumps(data))
    return ids


def _palette_with_transparency(rgb: np.ndarray) -> Image.Image:
    image = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    image.info["transparency"] = 0
    return image


def _annotation(ann_id: int, image_id: int, segmentation, iscrowd: int) -> dict:
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": iscrowd,
            "segmentation": segmentation, "area": 1.0, "bbox": [0, 0, 1, 1]}


@pytest.fixture(scope="session")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("bad")
    return root, write_bad_inputs(root)
