"""MLflow through its own library (`pip install 'wam-pipe[mlflow]'`).

Tracking URI: MLflow's own `MLFLOW_TRACKING_URI` (a server, a database), else a SQLite store `<run>/mlflow.db`
(MLflow 3 refuses its old file store); browse it with `mlflow ui --backend-store-uri sqlite:///<run>/mlflow.db`.
Experiment: `run.project`, else the pipeline name. Credentials stay in MLflow's environment variables.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Mapping

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from wam_pipe.core.tracking import HParam, Scalar
from wam_pipe.runner.tracking import TrackerRun

# MLflow refuses parameter values longer than this (characters).
_PARAM_LIMIT = 6000


class MlflowTracker:
    """Uses `MlflowClient` with an explicit run id (no global active run: two runs in one process stay apart)."""

    def __init__(self, run: TrackerRun, log: Callable[[str], None]):
        uri = os.environ.get("MLFLOW_TRACKING_URI") or local_store(run.run_dir)
        # In the run dir's own store, artifacts go next to it (MLflow's default is ./mlartifacts under the cwd).
        artifacts = None if "MLFLOW_TRACKING_URI" in os.environ else (run.run_dir / "mlartifacts").resolve().as_uri()
        self.client = MlflowClient(tracking_uri=uri)
        self.run_id = run.ids.get("mlflow")
        if self.run_id is None:
            experiment = run.project or run.name
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else self.client.create_experiment(experiment,
                                                                                           artifact_location=artifacts)
            created = self.client.create_run(experiment_id, run_name=run.name,
                                             tags={f"wam_pipe.tag.{t}": "1" for t in run.tags})
            self.run_id = created.info.run_id
            run.remember("mlflow", self.run_id)
        else:
            self.client.update_run(self.run_id, status="RUNNING")
        log(f"mlflow: run {self.run_id} at {uri}")

    def log_scalars(self, kind: str, step: int, values: Mapping[str, Scalar]) -> None:
        now = _millis()
        metrics = [Metric(f"{kind}/{k}", float(v), now, step) for k, v in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def log_images(self, kind: str, step: int, images: Mapping[str, Path]) -> None:
        for path in images.values():
            self.client.log_artifact(self.run_id, str(path), artifact_path=f"{kind}/step-{step:08d}")

    def log_text(self, name: str, text: str) -> None:
        self.client.log_text(self.run_id, text, f"{name}.yaml")

    def log_summary(self, hparams: Mapping[str, HParam], metrics: Mapping[str, Scalar]) -> None:
        logged = set(self.client.get_run(self.run_id).data.params)  # a resumed run keeps its first values
        params = [Param(k, str(v)[:_PARAM_LIMIT]) for k, v in hparams.items() if k not in logged]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[start:start + 100])
        now = _millis()
        self.client.log_batch(self.run_id, metrics=[Metric(f"final/{k}", float(v), now, 0)
                                                    for k, v in metrics.items()])

    def close(self, failed: bool = False) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


def local_store(run_dir: Path) -> str:
    """The default tracking URI: a SQLite database in the run dir (artifacts next to it, in `mlartifacts/`)."""
    return f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"


def _millis() -> int:
    return int(time.time() * 1000)


def open_tracker(run: TrackerRun, log: Callable[[str], None]) -> MlflowTracker:
    return MlflowTracker(run, log)
