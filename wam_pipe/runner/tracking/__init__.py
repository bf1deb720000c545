"""Experiment trackers named by `run.loggers`: TensorBoard (default, part of the base install), Weights & Biases
and MLflow (optional extras). `open_trackers` builds rank 0's `TrackerGroup`; the other ranks get a `NullTracker`.

| name        | package      | install                        | where it writes (no credentials in YAML)                  |
|-------------|--------------|--------------------------------|-----------------------------------------------------------|
| tensorboard | tensorboard  | base install                   | `<run>/tb/` event files                                   |
| wandb       | wandb        | pip install 'wam-pipe[wandb]'  | `<run>/wandb/`; offline unless WANDB_MODE / an API key     |
| mlflow      | mlflow       | pip install 'wam-pipe[mlflow]' | MLFLOW_TRACKING_URI, else SQLite `<run>/mlflow.db`          |

A resumed run continues the same tracker run: TensorBoard purges the steps redone after the checkpoint, W&B and
MLflow reopen the run whose id `<run>/trackers.json` keeps.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from wam_pipe.core.context import RunContext
from wam_pipe.core.tracking import TRACKERS, NullTracker, Tracker, TrackerGroup
from wam_pipe.core.atomic import atomic_write_bytes
from wam_pipe.core import run_layout as layout


@dataclass(frozen=True)
class TrackerRun:
    """What a tracker needs to open: the run dir, the pipeline name (default project/experiment), the settings'
    tracking keys, and where this run restarts (0 for a fresh start, else the checkpoint's step)."""

    run_dir: Path
    name: str
    project: str | None
    tags: tuple[str, ...]
    start_step: int
    ids: dict[str, str]          # tracker name -> run id kept from an earlier start of this run dir

    def remember(self, tracker: str, run_id: str) -> None:
        """Keep `run_id` in `<run>/trackers.json` so that a resume reopens the same tracker run."""
        self.ids[tracker] = run_id
        atomic_write_bytes(self.run_dir / TRACKER_IDS, (json.dumps(self.ids, indent=1) + "\n").encode())


TRACKER_IDS = "trackers.json"


def open_trackers(ctx: RunContext, names: list[str], name: str, project: str | None, tags: list[str],
                  start_step: int) -> Tracker:
    """Rank 0's trackers for this run (names and packages were checked by `wam-pipe validate`); `start_step` is
    the step of the checkpoint the run resumes from (0: a fresh start). They open on the first value logged, so
    a run that fails before doing any work leaves no tracker files (and its run dir stays reusable)."""
    if not ctx.is_main or not names:
        return NullTracker()
    ids_path = Path(ctx.run_dir) / TRACKER_IDS
    ids = json.loads(ids_path.read_text()) if ids_path.is_file() and start_step > 0 else {}
    run = TrackerRun(Path(ctx.run_dir), name, project, tuple(tags), start_step, ids)

    def open_all() -> TrackerGroup:
        members: dict[str, Tracker] = {}
        try:
            for tracker in names:
                module = importlib.import_module(f"{__name__}.{TRACKERS[tracker].module}")
                members[tracker] = module.open_tracker(run, ctx.log)
        except BaseException:
            TrackerGroup(members).close(failed=True)
            raise
        return TrackerGroup(members)

    return OpenOnFirstUse(open_all)


class OpenOnFirstUse:
    """A tracker group opened by the first call that logs something; texts logged before are kept until then."""

    def __init__(self, opener: Callable[[], TrackerGroup]):
        self._opener, self._group, self._texts = opener, None, []

    def _open(self) -> TrackerGroup:
        if self._group is None:
            self._group = self._opener()
            for name, text in self._texts:
                self._group.log_text(name, text)
        return self._group

    def log_scalars(self, kind: str, step: int, values: Mapping[str, Any]) -> None:
        self._open().log_scalars(kind, step, values)

    def log_images(self, kind: str, step: int, images: Mapping[str, Path]) -> None:
        self._open().log_images(kind, step, images)

    def log_text(self, name: str, text: str) -> None:
        if self._group is None:
            self._texts.append((name, text))
        else:
            self._group.log_text(name, text)

    def log_summary(self, hparams: Mapping[str, Any], metrics: Mapping[str, Any]) -> None:
        self._open().log_summary(hparams, metrics)

    def close(self, failed: bool = False) -> None:
        if self._group is not None:
            self._group.close(failed)


def final_metrics(run_dir: Path) -> dict[str, float]:
    """The numbers a finished run is judged by: the last evaluation's summary (`eval/<name>`) and the last epoch's
    training averages (`train/<name>`), from the files the run wrote."""
    metrics: dict[str, float] = {}
    log = layout.log_path(run_dir)
    if log.is_file():
        epochs = [r for r in map(_json_or_none, log.read_text().splitlines()) if r and r.get("kind") == "epoch"]
        if epochs:
            metrics.update({f"train/{k}": v for k, v in epochs[-1].items() if _is_number(v)
                            and k not in ("epoch", "step", "time")})
    evaluation = layout.metrics_path(run_dir)
    if evaluation.is_file():
        summary = (_json_or_none(evaluation.read_text()) or {}).get("summary") or {}
        metrics.update({f"eval/{k}": v for k, v in summary.items() if _is_number(v)})
    return metrics


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # not NaN


def flat_hparams(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The hyper-parameters a run is compared by: scalars of `vars`, `run` and the step/augment stages, as dotted
    keys (lists of scalars joined into a string)."""
    out: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), value)
        elif isinstance(node, (list, tuple)):
            if all(isinstance(v, (int, float, str, bool)) for v in node):
                out[prefix] = ",".join(map(str, node))
            else:
                for i, value in enumerate(node):
                    walk(f"{prefix}.{i}", value)
        elif isinstance(node, (int, float, str, bool)):
            out[prefix] = node

    walk("vars", resolved.get("vars") or {})
    walk("run", resolved.get("run") or {})
    stages = resolved.get("stages") or {}
    for slot in ("step", "augment"):
        walk(f"stages.{slot}", stages.get(slot) or {})
    return out
