"""TensorBoard: scalars, eval pictures, the resolved config as text and an HParams session, in `<run>/tb/`."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import numpy as np
from PIL import Image
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary

from wam_pipe.core import run_layout as layout
from wam_pipe.core.tracking import HParam, Scalar
from wam_pipe.runner.tracking import TrackerRun


class TensorBoardTracker:
    """One `SummaryWriter` on `<run>/tb/` for training and evaluation alike.

    On resume, `purge_step` = the checkpoint's step + 1: TensorBoard hides the events a killed run wrote after its
    checkpoint, so the redone steps appear once.
    """

    def __init__(self, run: TrackerRun):
        folder = layout.tensorboard_dir(run.run_dir)
        purge = run.start_step + 1 if run.start_step > 0 and folder.is_dir() else None
        self.writer = SummaryWriter(log_dir=str(folder), purge_step=purge)

    def log_scalars(self, kind: str, step: int, values: Mapping[str, Scalar]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(f"{kind}/{name}", value, step)
        self.writer.flush()

    def log_images(self, kind: str, step: int, images: Mapping[str, Path]) -> None:
        for name, path in images.items():
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))  # (H, W, 3) uint8
            self.writer.add_image(f"{kind}/{name}", pixels, step, dataformats="HWC")
        self.writer.flush()

    def log_text(self, name: str, text: str) -> None:
        # Markdown: indent by four spaces so the YAML keeps its layout.
        self.writer.add_text(name, "\n".join("    " + line for line in text.splitlines()), 0)
        self.writer.flush()

    def log_summary(self, hparams: Mapping[str, HParam], metrics: Mapping[str, Scalar]) -> None:
        # Written into the run's own directory (not the per-call subfolder `add_hparams` makes), so the HParams
        # view shows this run with its curves.
        tagged = {f"hparams/{k}": float(v) for k, v in metrics.items()}
        for summary in hparams_summary(dict(hparams), tagged):
            self.writer.file_writer.add_summary(summary)
        for tag, value in tagged.items():
            self.writer.add_scalar(tag, value, 0)
        self.writer.flush()

    def close(self, failed: bool = False) -> None:
        self.writer.close()


def open_tracker(run: TrackerRun, log: Callable[[str], None]) -> TensorBoardTracker:
    return TensorBoardTracker(run)
