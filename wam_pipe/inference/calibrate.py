"""Measure what `detect` sees on clean and on watermarked photos, to choose `--min-fraction` for a model.

The computation behind `wam-pipe calibrate --checkpoint C.pt --images DIR [--limit 80] [--json OUT.json]`
(wam_pipe/cli/calibrate_cmd.py). For each photo of DIR (sorted, the first `limit`), six cases: the clean photo,
the photo watermarked over its whole surface, and watermarked inside a fixed box of 20% of its area (x 10-50%,
y 12.5-62.5%), each also after a JPEG (quality 80) round trip. Each photo gets its own seeded random message.
For each case the table gives the quantiles over photos of:
- `fraction`: share of the pixels predicted watermarked (detection logit > 0);
- `region`: share of the image covered by the largest connected predicted region (what `--min-fraction` tests);
- `bit_conf`: mean |2 sigmoid(bit logit) - 1| over the predicted pixels (0 = coin flips, 1 = certain; 0 when
  nothing is predicted);
- `bit_acc`: decoded message vs the embedded one (watermarked cases);
and the share of photos reported as watermarked at each threshold. These are the numbers of docs/eval.md.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from wam_pipe.inference.detect import DEFAULT_MIN_FRACTION, detect_image, embed_image
from wam_pipe.inference.image_io import read_image
from wam_pipe.config.checkpoint_model import load_watermarker
from wam_pipe.core.errors import UserError

CASES = ("clean", "clean_jpeg80", "full", "full_jpeg80", "box20", "box20_jpeg80")
QUANTILES = (0, 5, 50, 95, 100)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def jpeg_round_trip(image: torch.Tensor, quality: int = 80) -> torch.Tensor:
    """uint8 `(3, H, W)` through an in-memory JPEG file, as a photo shared online would be."""
    buffer = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, "JPEG", quality=quality)  # (H, W, 3)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return torch.from_numpy(np.asarray(decoded.convert("RGB")).copy()).permute(2, 0, 1)  # (3, H, W)


def box_mask(height: int, width: int) -> torch.Tensor:
    """The fixed box `(1, H, W)` 0/1 of the round-trip test: 40% of the width x 50% of the height."""
    mask = torch.zeros(1, height, width)
    mask[:, height // 8: height * 5 // 8, width // 10: width // 2] = 1
    return mask


def case_images(model: Any, image: torch.Tensor, message: torch.Tensor) -> dict[str, torch.Tensor]:
    full = embed_image(model, image, message).image
    box = embed_image(model, image, message, box_mask(*image.shape[-2:])).image
    images = {"clean": image, "full": full, "box20": box}
    return {**images, **{f"{name}_jpeg80": jpeg_round_trip(img) for name, img in images.items()}}


def measure(model: Any, image: torch.Tensor, message: torch.Tensor | None) -> dict[str, float]:
    """One photo's detection statistics (`bit_acc` only when `message` is the embedded one)."""
    found = detect_image(model, image)
    det, bits = found.preds[0], found.preds[1:]  # (s, s), (nbits, s, s)
    predicted = det > 0
    confidence = (2 * torch.sigmoid(bits[:, predicted]) - 1).abs()  # (nbits, P)
    stats = {"fraction": found.fraction, "region": found.region,
             "bit_conf": float(confidence.mean()) if confidence.numel() else 0.0}
    if message is not None:
        stats["bit_acc"] = float((found.message == message).float().mean())
    return stats


def summarize(rows: list[dict[str, dict[str, float]]], thresholds: list[float]) -> dict[str, Any]:
    """Quantiles of each statistic and the detection rate at each threshold, per case."""
    summary: dict[str, Any] = {}
    for case in CASES:
        values = {key: np.array([row[case][key] for row in rows]) for key in rows[0][case]}
        summary[case] = {key: dict(zip([f"p{q}" for q in QUANTILES], np.percentile(v, QUANTILES).round(4).tolist()))
                         for key, v in values.items()}
        summary[case]["detected"] = {str(t): float(np.mean(values["region"] >= t)) for t in thresholds}
    return summary


def print_table(summary: dict[str, Any], photos: int) -> None:
    print(f"{photos} photos; quantiles min / p5 / median / p95 / max")
    for case, stats in summary.items():
        rates = ", ".join(f"{100 * r:.0f}% at {t}" for t, r in stats["detected"].items())
        print(f"{case:13s} detected: {rates}")
        for key, q in stats.items():
            if key != "detected":
                print(f"  {key:9s} " + " / ".join(f"{v:.4f}" for v in q.values()))


def calibrate(checkpoint: str | Path, images: str | Path, limit: int = 80, thresholds: Sequence[float] = (),
              seed: int = 0, json_path: str | Path | None = None, device: torch.device | str = "cpu",
              allow_targets: Sequence[str] = ()) -> dict[str, Any]:
    """Measure every case on every photo; print the table; return the summary.

    Args:
        checkpoint: a `.pt` file written by wam-pipe training.
        images: a folder of clean photos (.jpg, .jpeg, .png); the first `limit` in name order are used.
        limit: photos to use (default 80).
        thresholds: `--min-fraction` values to report detection rates for (default: `DEFAULT_MIN_FRACTION`).
        seed: photo i gets a random message drawn from seed + i (default 0).
        json_path: also write the per-photo numbers and the summary there (default: none).
        device: where the model runs (default cpu).
        allow_targets: extra import patterns to trust in the checkpoint's config (custom components).
    """
    folder = Path(images)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder; give a folder of clean photos")
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not photos:
        raise UserError(f"{folder}: no .jpg/.jpeg/.png photos; give a folder of clean photos")
    loaded = load_watermarker(checkpoint, device, allow_targets)
    rows = []
    for index, photo in enumerate(photos):
        generator = torch.Generator().manual_seed(seed + index)
        message = torch.randint(0, 2, (loaded.nbits,), generator=generator).float()
        case_imgs = case_images(loaded.model, read_image(photo), message)
        rows.append({case: measure(loaded.model, case_imgs[case], None if case.startswith("clean") else message)
                     for case in CASES})
    summary = summarize(rows, list(thresholds) or [DEFAULT_MIN_FRACTION])
    print_table(summary, len(photos))
    if json_path:
        Path(json_path).write_text(json.dumps({"checkpoint": str(checkpoint), "photos": [p.name for p in photos],
                                               "rows": rows, "summary": summary}, indent=1))
    return summary
