"""Weights & Biases through its own library (`pip install 'wam-pipe[wandb]'`).

Mode: W&B's own settings decide (`WANDB_MODE`, `wandb login` / `WANDB_API_KEY`); with neither a mode nor a key in
the environment the run is logged offline under `<run>/wandb/` (upload later with `wandb sync`), so a machine
without credentials never blocks on a login prompt. Project: `run.project`, else the pipeline name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping

import wandb

from wam_pipe.core.tracking import HParam, Scalar
from wam_pipe.runner.tracking import TrackerRun


class WandbTracker:
    def __init__(self, run: TrackerRun, log: Callable[[str], None]):
        mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        self.run = wandb.init(project=run.project or run.name, name=run.name, dir=str(run.run_dir),
                              id=run.ids.get("wandb"), resume="allow", mode=mode, tags=list(run.tags),
                              settings=wandb.Settings(silent=True, console="off"))
        if run.ids.get("wandb") != self.run.id:
            run.remember("wandb", self.run.id)
        if mode == "offline":
            log(f"wandb: offline run in {Path(self.run.dir).parent} (upload with `wandb sync`)")

    def log_scalars(self, kind: str, step: int, values: Mapping[str, Scalar]) -> None:
        self.run.log({f"{kind}/{k}": v for k, v in values.items()}, step=step)

    def log_images(self, kind: str, step: int, images: Mapping[str, Path]) -> None:
        self.run.log({f"{kind}/{k}": wandb.Image(str(p)) for k, p in images.items()}, step=step)

    def log_text(self, name: str, text: str) -> None:
        # The resolved config travels as a file of the run (W&B shows it under Files).
        path = Path(self.run.dir) / f"{name}.yaml"
        path.write_text(text)
        self.run.save(str(path), base_path=self.run.dir, policy="now")

    def log_summary(self, hparams: Mapping[str, HParam], metrics: Mapping[str, Scalar]) -> None:
        self.run.config.update(dict(hparams), allow_val_change=True)
        for key, value in metrics.items():
            self.run.summary[f"final/{key}"] = value

    def close(self, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)


def open_tracker(run: TrackerRun, log: Callable[[str], None]) -> WandbTracker:
    return WandbTracker(run, log)
