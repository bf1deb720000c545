"""`MetricTable`: exact on-device sums of per-cell metrics, reduced across ranks with one all-reduce.

Every metric is kept as a (sum, count) pair per cell, so averages over batches and ranks are exact
(mean = total sum / total count) and a metric without any sample (bit accuracy when no pixel was watermarked) is
reported as null instead of a NaN or a -1 placeholder. Nothing here reads a device value until `rows()`.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.distributed as dist


class MetricTable:
    """Sums and counts of `metrics` for each of `cells` (a list of dicts: the identifying columns of a row).

    Args:
        cells: one dict per row, e.g. `{"mask": "box", "aug": "rotate", "strength": 10.0}`.
        metrics: metric names, the value columns of every row.
        device: where the sums live (the evaluation device, so updates never wait for it).
    """

    def __init__(self, cells: Sequence[dict[str, Any]], metrics: Sequence[str], device: torch.device):
        self.cells = [dict(c) for c in cells]
        self.metrics = list(metrics)
        self._column = {name: i for i, name in enumerate(self.metrics)}
        # float64 keeps sums over thousands of images exact to well below the printed precision.
        dtype = torch.float64 if device.type in ("cpu", "cuda") else torch.float32
        self.totals = torch.zeros(len(self.cells), len(self.metrics), 2, dtype=dtype, device=device)  # (C, M, 2)

    def add(self, cell: int, name: str, total: torch.Tensor, count: torch.Tensor | float) -> None:
        """Add a sum and a count (scalar tensors on the device, or a float count) to one cell's metric."""
        column = self._column[name]
        self.totals[cell, column, 0] += total.to(self.totals.dtype)
        self.totals[cell, column, 1] += count.to(self.totals.dtype) if torch.is_tensor(count) else float(count)

    def add_per_image(self, cell: int, name: str, values: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        """Add per-image values `(B,)`, optionally weighted `(B,)` 0/1 (images that do not count get weight 0)."""
        values = values.float()
        if weight is None:
            self.add(cell, name, values.sum(), float(values.numel()))
        else:
            self.add(cell, name, (values * weight).sum(), weight.sum())

    def all_reduce(self) -> None:
        """Sum the totals of every rank (a no-op without an initialised process group)."""
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(self.totals, op=dist.ReduceOp.SUM)

    def rows(self, count_metric: str | None = None) -> list[dict[str, Any]]:
        """One dict per cell: its identifying columns, each metric's mean (None when nothing was counted), and
        `images` = the count of `count_metric` (default: the first metric). This is the one host read."""
        totals = self.totals.cpu().tolist()
        count_column = self._column[count_metric or self.metrics[0]]
        rows = []
        for cell, values in zip(self.cells, totals):
            row = dict(cell)
            for name, (total, count) in zip(self.metrics, values):
                row[name] = total / count if count > 0 else None
            row["images"] = int(round(values[count_column][1]))
            rows.append(row)
        return rows
