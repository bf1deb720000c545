"""Pictures of an evaluation: `grid.png` (what the model does to a few images), `robustness.png` (bit accuracy and
mIoU per augmentation setting) and `<run>/curves.png` (training curves from `log.jsonl`).

Sizes are fixed so that tools and tests can rely on them:
- `grid.png`: one row per image, 5 tiles of S x S (S = evaluation image side) separated by `PAD` pixels, under a
  `HEADER`-pixel caption strip: width `5 * S + 6 * PAD`, height `HEADER + n * S + (n + 1) * PAD`.
- `robustness.png` and `curves.png`: 1200 x 800 pixels.
Plots use matplotlib's object API with the Agg canvas (no pyplot global state, no display needed).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from wam_pipe.core.imaging import to_uint8

PAD = 2
HEADER = 14
GRID_COLUMNS = ("cover", "watermarked", "diff x10", "augmented", "pred vs target")
FIGURE_SIZE_IN = (12, 8)
FIGURE_DPI = 100  # 12 x 8 in at 100 dpi = 1200 x 800 px
DIFF_GAIN = 10.0


def grid_picture_size(side: int, rows: int) -> tuple[int, int]:
    """(width, height) of `grid.png` for `rows` images of `side` pixels."""
    columns = len(GRID_COLUMNS)
    return columns * side + (columns + 1) * PAD, HEADER + rows * side + (rows + 1) * PAD


def _hwc(images: torch.Tensor) -> np.ndarray:
    """uint8 `(B, 3, H, W)` -> numpy `(B, H, W, 3)`."""
    return images.permute(0, 2, 3, 1).cpu().numpy()


def comparison_tiles(predicted: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """Predicted vs target masks `(B, H, W)` (0/1) as colour tiles `(B, H, W, 3)` uint8: white = both, red =
    predicted only (false positive), blue = target only (missed), black = neither."""
    p, t = predicted.bool().cpu(), target.bool().cpu()
    tiles = torch.zeros(*p.shape, 3, dtype=torch.uint8)
    tiles[p & t] = torch.tensor([255, 255, 255], dtype=torch.uint8)
    tiles[p & ~t] = torch.tensor([230, 40, 40], dtype=torch.uint8)
    tiles[~p & t] = torch.tensor([40, 90, 230], dtype=torch.uint8)
    return tiles.numpy()


def grid_tiles(covers: torch.Tensor, spliced: torch.Tensor, augmented: torch.Tensor, predicted: torch.Tensor,
               target: torch.Tensor) -> list[list[np.ndarray]]:
    """The tiles of `grid.png`, one list of 5 `(S, S, 3)` uint8 arrays per image.

    Args:
        covers, spliced, augmented: (n, 3, S, S) model space. predicted, target: (n, S, S) 0/1.
    """
    diff = (to_uint8(spliced).float() - to_uint8(covers).float()).abs().mul(DIFF_GAIN).clamp(0, 255).to(torch.uint8)
    columns = [_hwc(to_uint8(covers)), _hwc(to_uint8(spliced)), _hwc(diff), _hwc(to_uint8(augmented)),
               comparison_tiles(predicted, target)]
    return [[column[i] for column in columns] for i in range(covers.shape[0])]


def save_grid_picture(path: Path, tiles: list[list[np.ndarray]], captions: Sequence[str]) -> None:
    """Compose the tiles (rows of 5 equal squares) with column titles and a caption per row; write a PNG."""
    side = tiles[0][0].shape[0]
    width, height = grid_picture_size(side, len(tiles))
    canvas = Image.new("RGB", (width, height), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(GRID_COLUMNS):
        draw.text((PAD + c * (side + PAD) + 2, 1), title, fill=(235, 235, 235))
    for r, row in enumerate(tiles):
        top = HEADER + PAD + r * (side + PAD)
        for c, tile in enumerate(row):
            canvas.paste(Image.fromarray(tile), (PAD + c * (side + PAD), top))
        if r < len(captions):
            # The caption names the mask and the setting used for this row, on the augmented tile.
            draw.text((PAD + 3 * (side + PAD) + 3, top + 2), captions[r], fill=(255, 255, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def _figure(rows: int, cols: int) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE_IN, dpi=FIGURE_DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, cols, squeeze=False)
    return figure, axes


def _save_figure(figure: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=FIGURE_DPI)  # no bbox_inches="tight": the pixel size stays fixed


def save_robustness_plot(path: Path, rows: list[dict[str, Any]], labels: list[str], masks: list[str]) -> None:
    """Bit accuracy and mIoU per augmentation setting (x), one line per mask and their mean.

    Args:
        rows: the grid rows of metrics.json (mask-major, settings in `labels` order within a mask).
        labels: the setting labels, in grid order. masks: the mask names, in grid order.
    """
    figure, axes = _figure(2, 1)
    x = np.arange(len(labels))
    for axis, metric, title in ((axes[0][0], "bit_acc", "bit accuracy (watermarked pixels)"),
                                (axes[1][0], "miou", "detection mIoU")):
        table = np.full((len(masks), len(labels)), np.nan)
        for i, row in enumerate(rows):
            value = row.get(metric)
            table[i // len(labels), i % len(labels)] = np.nan if value is None else value
        for m, mask in enumerate(masks):
            axis.plot(x, table[m], marker=".", linewidth=1, alpha=0.7, label=mask)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a setting where every mask is NaN stays NaN
            mean = np.nanmean(table, axis=0)
        axis.plot(x, mean, color="black", linewidth=2.2, label="mean")
        axis.set_title(title, fontsize=10)
        axis.set_ylim(0, 1.02)
        axis.set_xticks(x)
        axis.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, ncol=min(len(masks) + 1, 7), loc="lower left")
    figure.tight_layout()
    _save_figure(figure, path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a `.jsonl` file; unreadable lines (a write cut short) are skipped."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float)) and "step" in r]
    return [p[0] for p in points], [p[1] for p in points]


def save_curves_plot(path: Path, log: list[dict[str, Any]], history: list[dict[str, Any]]) -> bool:
    """Training curves over steps (losses, bit accuracy, PSNR, mIoU) from `log.jsonl` records, with the evaluations
    of `history.jsonl` as markers. Returns False (and writes nothing) when there is no training record."""
    train = [r for r in log if r.get("kind") == "train"] or [r for r in log if r.get("kind") == "epoch"]
    if not train:
        return False
    figure, axes = _figure(2, 2)
    panels = (
        (axes[0][0], ("loss", "loss_detection", "loss_decoding", "loss_perceptual", "loss_adversarial"), "losses"),
        (axes[0][1], ("bit_acc",), "bit accuracy"),
        (axes[1][0], ("psnr",), "PSNR (dB)"),
        (axes[1][1], ("miou",), "detection mIoU"),
    )
    for axis, keys, title in panels:
        for key in keys:
            steps, values = _series(train, key)
            if steps:
                axis.plot(steps, values, linewidth=1.2, label=f"train {key}")
            eval_steps, eval_values = _series(history, key)
            if eval_steps:
                axis.plot(eval_steps, eval_values, "o", markersize=5, label=f"eval {key} (grid mean)")
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("step", fontsize=8)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    figure.tight_layout()
    _save_figure(figure, path)
    return True
