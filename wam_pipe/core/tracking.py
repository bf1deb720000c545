"""The experiment-tracker interface every layer may call (`ctx.tracker`), and its no-op and fan-out forms.

The training loop calls `log_scalars` once per log line with values it has already read from the device (so a
tracker adds no host sync), the eval stage once per evaluation (scalars, then its pictures), and the runner
`log_summary` once when training ends. Implementations (TensorBoard, Weights & Biases, MLflow) live in
`wam_pipe.runner.tracking`; only rank 0 holds real ones.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol, Sequence, Union

Scalar = Union[int, float]
HParam = Union[int, float, str, bool]


@dataclass(frozen=True)
class TrackerKind:
    module: str      # wam_pipe.runner.tracking.<module>, holding `open_tracker`
    package: str     # what must be importable
    extra: str       # the pip extra that installs it


# The names `run.loggers` accepts.
TRACKERS: dict[str, TrackerKind] = {
    "tensorboard": TrackerKind("tensorboard_tracker", "tensorboard", "tensorboard"),
    "wandb": TrackerKind("wandb_tracker", "wandb", "wandb"),
    "mlflow": TrackerKind("mlflow_tracker", "mlflow", "mlflow"),
}


def logger_problems(names: object) -> list[str]:
    """One message per unknown logger name or logger whose package is not installed, so that `wam-pipe validate`
    names the extra to install before any work starts."""
    problems = []
    for name in names if isinstance(names, (list, tuple)) else ():
        kind = TRACKERS.get(name) if isinstance(name, str) else None
        if kind is None:
            problems.append(f"unknown logger {name!r}; choose from {', '.join(TRACKERS)}")
        elif importlib.util.find_spec(kind.package) is None:
            problems.append(f"{name}: {kind.package} is not installed; pip install 'wam-pipe[{kind.extra}]' "
                            f"(or drop {name!r} from run.loggers)")
    return problems


class Tracker(Protocol):
    """What the loop and the stages may tell a tracker. Every method must be cheap on the training path."""

    def log_scalars(self, kind: str, step: int, values: Mapping[str, Scalar]) -> None:
        """`values` as `<kind>/<name>` at `step` (kind: "train", "epoch", "eval")."""

    def log_images(self, kind: str, step: int, images: Mapping[str, Path]) -> None:
        """PNG files (eval's grid.png, robustness.png) as images `<kind>/<name>` at `step`."""

    def log_text(self, name: str, text: str) -> None:
        """A text once per run (the resolved config)."""

    def log_summary(self, hparams: Mapping[str, HParam], metrics: Mapping[str, Scalar]) -> None:
        """The run's hyper-parameters with its final metrics (TensorBoard's HParams view, W&B summary, MLflow)."""

    def close(self, failed: bool = False) -> None:
        """Flush and release; called once at the end of the run, with `failed=True` after an error."""


class NullTracker:
    """Logs nothing: ranks other than 0, and runs with `run.loggers: []`."""

    names: Sequence[str] = ()

    def log_scalars(self, kind: str, step: int, values: Mapping[str, Scalar]) -> None:
        pass

    def log_images(self, kind: str, step: int, images: Mapping[str, Path]) -> None:
        pass

    def log_text(self, name: str, text: str) -> None:
        pass

    def log_summary(self, hparams: Mapping[str, HParam], metrics: Mapping[str, Scalar]) -> None:
        pass

    def close(self, failed: bool = False) -> None:
        pass


class TrackerGroup:
    """Several trackers behind the one interface; each call goes to every member, in order."""

    def __init__(self, members: Mapping[str, Tracker]):
        self.members = dict(members)
        self.names = tuple(self.members)

    def log_scalars(self, kind: str, step: int, values: Mapping[str, Scalar]) -> None:
        numbers = {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for member in self.members.values():
            member.log_scalars(kind, step, numbers)

    def log_images(self, kind: str, step: int, images: Mapping[str, Path]) -> None:
        present = {k: Path(v) for k, v in images.items() if Path(v).is_file()}
        for member in self.members.values():
            member.log_images(kind, step, present)

    def log_text(self, name: str, text: str) -> None:
        for member in self.members.values():
            member.log_text(name, text)

    def log_summary(self, hparams: Mapping[str, HParam], metrics: Mapping[str, Scalar]) -> None:
        for member in self.members.values():
            member.log_summary(hparams, metrics)

    def close(self, failed: bool = False) -> None:
        for member in self.members.values():
            member.close(failed)
