"""One table and one figure for all points of a sweep (`wam-pipe report runs/<name>/sweep-<id>`).

Input: the swept keys (key -> values) and, per point, its swept values and its `metrics.json` summary (None when
the point has no evaluation yet). Every summary metric is higher-is-better (accuracies, mIoU, PSNR, SSIM): the best
point of each metric row is marked `*`.

    point                       0         1
    stages.step.optimizer.lr  0.001     0.003
    ---------------------------------------
    bit_acc                   0.520    0.516*  ...
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

SWEEP_METRICS = ("bit_acc", "word_acc", "miou", "psnr")


def best_points(summaries: Sequence[dict[str, Any] | None], metric: str) -> set[int]:
    """Indices of the points with the highest `metric` (ties all marked; none when no point has it)."""
    values = {i: s.get(metric) for i, s in enumerate(summaries) if s and isinstance(s.get(metric), (int, float))}
    values = {i: v for i, v in values.items() if not math.isnan(v)}
    if not values:
        return set()
    top = max(values.values())
    return {i for i, v in values.items() if v == top}


def sweep_lines(swept: dict[str, list[str]], values: Sequence[dict[str, str]],
                summaries: Sequence[dict[str, Any] | None], metrics: Sequence[str] = SWEEP_METRICS) -> list[str]:
    """The swept values as header rows (one column per point), then one row per metric, best marked `*`."""
    labels = ["point", *swept, *metrics]
    first = max(len(label) for label in labels) + 2
    cells: list[list[str]] = [[str(i) for i in range(len(values))]]
    cells += [[str(v.get(key, "-")) for v in values] for key in swept]
    for metric in metrics:
        best = best_points(summaries, metric)
        row = []
        for i, summary in enumerate(summaries):
            value = (summary or {}).get(metric)
            text = "-" if not isinstance(value, (int, float)) else f"{value:.3f}"
            row.append(text + ("*" if i in best else " "))
        cells.append(row)
    width = max(10, *(len(c) + 2 for row in cells for c in row))
    lines = []
    for r, (label, row) in enumerate(zip(labels, cells)):
        header = r <= len(swept)  # metric cells end in "*" or " ": pad the header cells the same
        lines.append(label.ljust(first) + "".join((c + " " if header else c).rjust(width) for c in row))
        if r == len(swept):
            lines.append("-" * len(lines[-1]))
    missing = [str(i) for i, s in enumerate(summaries) if s is None]
    if missing:
        lines.append(f"no evaluation yet: point{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    lines.append("* best of the row (higher is better)")
    return lines


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def plot_sweep(swept: dict[str, list[str]], values: Sequence[dict[str, str]],
               summaries: Sequence[dict[str, Any] | None], path: Path,
               metrics: Sequence[str] = SWEEP_METRICS) -> Path:
    """`path` (a PNG): one panel per metric, the metric against the first swept key's value, one line per
    combination of the other swept keys. Numeric values are placed on a numeric axis (log when they span 100x)."""
    key, others = next(iter(swept)), list(swept)[1:]
    numbers = [_as_number(v) for v in swept[key]]
    numeric = all(n is not None for n in numbers)
    position = {v: (n if numeric else i) for i, (v, n) in enumerate(zip(swept[key], numbers))}
    fig = Figure(figsize=(4 * len(metrics), 3.2))  # object API + Agg canvas: no pyplot state, no display
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(metrics), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        series: dict[str, list[tuple[float, float]]] = {}
        for point, summary in zip(values, summaries):
            value = (summary or {}).get(metric)
            if isinstance(value, (int, float)):
                name = " ".join(f"{k}={point[k]}" for k in others)
                series.setdefault(name, []).append((position[point[key]], float(value)))
        for name, xy in series.items():
            xy.sort()
            ax.plot([x for x, _ in xy], [y for _, y in xy], marker="o", label=name or None)
        if numeric and min(numbers) > 0 and max(numbers) / min(numbers) >= 100:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(list(position.values()), list(position))
        ax.set_xlabel(key)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        if others and series:
            ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    tmp.replace(path)
    return path
