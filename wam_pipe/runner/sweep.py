"""A sweep on disk, and running its points one after the other (`wam-pipe run --multirun`).

    runs/<name>/sweep-<id>/sweep.json     the pipeline, the swept keys and values, every point's overrides and dir
    runs/<name>/sweep-<id>/<i>/           point i's run dir (an ordinary run dir: report, resume, show work on it)

`<name>` is the first point's `run.output_dir` (or `--output-dir`); `<id>` is `Sweep.id`, so repeating the same
command resumes the sweep: finished points are resumed at their end (nothing left to do), an interrupted one from
its last checkpoint. `sweep.json` is written once, before any point runs (temp file then rename); whether a point
finished is read from its run dir, so Slurm array tasks never write to a shared file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from wam_pipe.config.sweep import Sweep
from wam_pipe.core import run_layout as layout
from wam_pipe.core.errors import UserError
from wam_pipe.core.settings import RunSettings

SWEEP_FILE = "sweep.json"


def sweep_dir(sweep: Sweep, output_dir: str | None) -> Path:
    first = sweep.pipelines[0]
    base = output_dir or RunSettings.from_dict(dict(first.resolved.get("run") or {}), first.name).output_dir
    return Path(base) / f"sweep-{sweep.id}"


def describe(sweep: Sweep) -> dict[str, Any]:
    """What `sweep.json` holds."""
    return {
        "pipeline": sweep.file,
        "id": sweep.id,
        "swept": sweep.swept,
        "points": [{"index": i, "dir": str(i), "values": values, "overrides": overrides}
                   for i, (values, overrides) in enumerate(zip(sweep.values, sweep.points))],
    }


def write_sweep_file(root: Path, sweep: Sweep) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / SWEEP_FILE
    tmp = path.with_name(f".{SWEEP_FILE}.tmp")
    tmp.write_text(json.dumps(describe(sweep), indent=2) + "\n")
    tmp.replace(path)
    return path


def read_sweep_file(root: str | Path) -> dict[str, Any]:
    """`sweep.json` of a sweep dir; a missing or broken one is a UserError."""
    path = Path(root) / SWEEP_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise UserError(f"{root}: not a sweep dir (no {SWEEP_FILE}); give runs/<name>/sweep-<id>") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid JSON ({err}); rerun the sweep to rewrite it") from err
    if not (isinstance(data, dict) and isinstance(data.get("points"), list) and isinstance(data.get("swept"), dict)):
        raise UserError(f"{path}: not a sweep description (no 'points' list / 'swept' map); rerun the sweep")
    return data


def run_points(sweep: Sweep, root: Path, run_point: Callable[[int, list[str], Path], None],
               log: Callable[[str], None] = print) -> list[int]:
    """Run every point in order with `run_point(index, overrides, run_dir)`; returns the indices that failed.

    A point that fails (a user error, a NaN, a crash) is reported in one line and the sweep goes on: the other
    points are independent experiments."""
    failed = []
    for i, (overrides, values) in enumerate(zip(sweep.points, sweep.values)):
        label = " ".join(f"{k}={v}" for k, v in values.items())
        log(f"sweep {sweep.id}: point {i + 1}/{len(sweep.points)} ({label}) -> {root / str(i)}")
        try:
            run_point(i, overrides, root / str(i))
        except Exception as err:  # noqa: BLE001  one point's failure must not stop the sweep
            lines = getattr(err, "lines", None) or [f"{type(err).__name__}: {err}"]
            log(f"sweep {sweep.id}: point {i} failed: {lines[0]}")
            failed.append(i)
    return failed


def point_summaries(root: str | Path, data: dict[str, Any]) -> list[dict[str, Any] | None]:
    """Each point's latest evaluation summary (`<i>/eval/metrics.json`), None for a point not evaluated yet."""
    out: list[dict[str, Any] | None] = []
    for point in data["points"]:
        path = layout.metrics_path(Path(root) / str(point.get("dir", point.get("index"))))
        try:
            summary = json.loads(path.read_text()).get("summary")
        except (OSError, ValueError, AttributeError):
            summary = None
        out.append(summary if isinstance(summary, dict) else None)
    return out
