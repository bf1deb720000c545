"""The files an evaluation writes (rank 0): `<run>/eval/metrics.json`, `<run>/eval/history.jsonl`, and reading
them back (`wam-pipe report`). Trackers (TensorBoard, ...) get the same summary through `ctx.tracker`.

`metrics.json` is replaced atomically (temp name, then rename), so a reader never sees half a file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wam_pipe.core import run_layout as layout
from wam_pipe.core.atomic import atomic_write_text
from wam_pipe.core.errors import UserError

METRICS_FORMAT = 1
HISTORY_KEYS = ("bit_acc", "msg_bit_acc", "word_acc", "miou", "psnr", "ssim", "bit_acc_identity")


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> Path:
    """Write `metrics.json` atomically and append one line to `history.jsonl`; returns the metrics path."""
    folder = layout.eval_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = layout.metrics_path(run_dir)
    atomic_write_text(path, json.dumps(metrics, indent=1) + "\n")
    summary = metrics.get("summary") or {}
    line = {"epoch": metrics["epoch"], "step": metrics["step"], "time": metrics["time"], "images": metrics["images"],
            "checkpoint": metrics.get("checkpoint"),
            **{k: summary[k] for k in summary if k in HISTORY_KEYS or k.startswith("multi_")}}
    with open(layout.history_path(run_dir), "a") as f:
        f.write(json.dumps(line) + "\n")
    return path


def read_metrics(where: str | Path) -> dict[str, Any]:
    """metrics.json of a run directory (or the file itself); a missing or broken file is a UserError."""
    where = Path(where)
    path = where if where.is_file() else layout.metrics_path(where)
    if not where.exists():
        raise UserError(f"{where}: no such run directory; give a run dir such as runs/quickstart")
    if not path.is_file():
        raise UserError(f"{where}: no evaluation yet ({path} is missing); run a pipeline with an eval stage, or "
                        f"`wam-pipe run {where}/config.yaml --only eval`")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid JSON ({err}); rerun the evaluation to rewrite it") from err
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise UserError(f"{path}: not an evaluation result (no 'results' list); rerun the evaluation")
    return data
