"""Detection over a folder (or glob) of images: `wam-pipe detect --images DIR|GLOB --out results.jsonl`.

A torch DataLoader decodes and resizes the images in `workers` processes (`prepare_for_detection`, the same
preparation as `Watermarker.detect`), the model runs on batches of `batch_size` in the main process. Each image
gives one JSON line, in file order:
  {"path": ..., "detected": bool, "confidence": float, "region": float, "fraction": float, "message": "0110...",
   "bit_confidence": [...]}
and an image that cannot be read gives {"path": ..., "error": "<reason>"} instead: it never stops the scan. The
lines go to `out` through a temporary file renamed at the end (an interrupted scan leaves no half file).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from wam_pipe.core.errors import UserError
from wam_pipe.core.progress import progress
from wam_pipe.inference.api import Watermarker, prepare_for_detection
from wam_pipe.inference.detect import DEFAULT_MIN_FRACTION
from wam_pipe.inference.image_io import read_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def list_images(spec: str | Path, recursive: bool = False) -> list[Path]:
    """The image files of a folder (by suffix, `recursive` into sub-folders) or of a glob pattern (`**` matches
    sub-folders when `recursive`), sorted. No match is a UserError."""
    text = str(spec)
    folder = Path(text)
    if folder.is_dir():
        found = folder.rglob("*") if recursive else folder.iterdir()
        files = sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserError(f"--images {text}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder"
                            + ("" if recursive else "; add --recursive to look in sub-folders"))
        return files
    if not glob.has_magic(text):
        raise UserError(f"--images {text}: no such folder; give a folder or a glob pattern such as 'photos/*.jpg'")
    files = sorted(Path(p) for p in glob.glob(text, recursive=recursive) if Path(p).is_file())
    if not files:
        raise UserError(f"--images {text}: the pattern matches no file")
    return files


class _Images(Dataset):
    """Item i: (i, float `(3, s, s)` in [0, 1] or None, (H, W), error text or None)."""

    def __init__(self, files: list[Path], img_size: int):
        self.files, self.img_size = files, img_size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, tuple[int, int], str | None]:
        try:
            image = read_image(self.files[index])  # uint8 (3, H, W)
        except UserError as err:
            return index, None, (0, 0), _reason(str(err), self.files[index])
        except Exception as err:  # a decoder failing in an unforeseen way must not stop the scan either
            return index, None, (0, 0), f"{type(err).__name__}: {err}"
        prepared = prepare_for_detection(image.float().div_(255), self.img_size)  # (3, s, s)
        return index, prepared, (int(image.shape[-2]), int(image.shape[-1])), None


def _reason(message: str, path: Path) -> str:
    """read_image's one-line error without the path prefix (the JSON line has the path)."""
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def _collate(items: list[tuple]) -> list[tuple]:
    return items


@dataclasses.dataclass
class ScanSummary:
    images: int = 0
    detected: int = 0
    unreadable: int = 0
    seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (f"{self.images} images: {self.detected} watermarked, {self.images - self.detected - self.unreadable} "
                f"not, {self.unreadable} unreadable; {self.seconds:.1f} s ({self.images_per_s:.1f} img/s)")


def _batches(files: list[Path], model: Watermarker, batch_size: int, workers: int) -> Iterator[list[tuple]]:
    loader = DataLoader(_Images(files, model.img_size), batch_size=batch_size, num_workers=workers,
                        collate_fn=_collate, persistent_workers=False,
                        prefetch_factor=2 if workers > 0 else None, timeout=600 if workers > 0 else 0)
    yield from loader


def scan(model: Watermarker, files: list[Path], out: str | Path, batch_size: int = 16, workers: int = 2,
         min_fraction: float | None = None, show_progress: bool = True) -> ScanSummary:
    """Detect on every file, writing one JSON line each to `out`; return the counts.

    Args:
        batch_size: images per forward pass (default 16).
        workers: loader processes decoding and resizing images (default 2; 0 decodes in this process).
        min_fraction: the presence threshold (default: `DEFAULT_MIN_FRACTION`).
    """
    if batch_size < 1:
        raise UserError(f"--batch-size: {batch_size}; use at least 1")
    if workers < 0:
        raise UserError(f"--workers: {workers}; use 0 or more")
    threshold = DEFAULT_MIN_FRACTION if min_fraction is None else min_fraction
    out = Path(out)
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: folder {out.parent} does not exist; create it or choose another path")
    summary = ScanSummary()
    start = time.perf_counter()
    temporary = out.with_name(f".{out.name}.tmp")
    try:
        with open(temporary, "w") as handle, progress(len(files), "detect", "img", enabled=show_progress) as bar:
            _scan_into(handle, bar, summary, model, files, batch_size, workers, threshold)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, out)
    summary.seconds = time.perf_counter() - start
    return summary


def _scan_into(handle: Any, bar: Any, summary: ScanSummary, model: Watermarker, files: list[Path], batch_size: int,
               workers: int, threshold: float) -> None:
    for batch in _batches(files, model, batch_size, workers):
        good = [item for item in batch if item[3] is None]
        found = iter(model.detect_prepared(torch.stack([item[1] for item in good]), [item[2] for item in good],
                                           threshold) if good else [])
        for index, _, _, error in batch:
            path = str(files[index])
            if error is not None:
                summary.unreadable += 1
                handle.write(json.dumps({"path": path, "error": error}) + "\n")
                continue
            result = next(found)
            summary.detected += result.present
            handle.write(json.dumps({
                "path": path, "detected": result.present, "confidence": round(result.confidence, 4),
                "region": round(result.region, 6), "fraction": round(result.fraction, 6),
                "message": result.message_bits,
                "bit_confidence": [round(float(c), 4) for c in result.bit_confidence]}) + "\n")
        summary.images += len(batch)
        bar.update(len(batch))
        bar.set_postfix_str(f"{summary.detected} watermarked, {summary.unreadable} unreadable")


def print_summary(summary: ScanSummary, out: str | Path, file: Any = None) -> None:
    print(f"{summary.line()}; wrote {out}", file=file or sys.stdout)
