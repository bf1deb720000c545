"""The run directory's layout: every file name and path a run writes, in one place.

    <run>/config.yaml            the composed pipeline, overrides applied, interpolations kept
    <run>/resolved.yaml          the same, fully resolved
    <run>/overrides.txt          the command-line overrides, one per line (appended on each resume)
    <run>/env.json               versions, git SHA and dirty flag, host, device
    <run>/log.jsonl              training log (one JSON object per line)
    <run>/curves.png             training and eval curves
    <run>/tb/                    TensorBoard events (`run.tensorboard: true`)
    <run>/checkpoints/last.pt    the latest checkpoint; `epoch-0001.pt` ... kept ones
    <run>/eval/metrics.json      the latest evaluation; history.jsonl, grid.png, robustness.png beside it
"""

from __future__ import annotations

from pathlib import Path

CONFIG = "config.yaml"
RESOLVED = "resolved.yaml"
OVERRIDES = "overrides.txt"
ENV = "env.json"
# What `write_run_files` writes before a run does any work.
RUN_RECORD = (CONFIG, RESOLVED, OVERRIDES, ENV)

LOG = "log.jsonl"
CURVES = "curves.png"
TENSORBOARD = "tb"
CHECKPOINTS = "checkpoints"
LAST_CHECKPOINT = "last.pt"
EVAL = "eval"
METRICS = "metrics.json"
HISTORY = "history.jsonl"
GRID = "grid.png"
ROBUSTNESS = "robustness.png"


def log_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / LOG


def tensorboard_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / TENSORBOARD


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINTS


def last_checkpoint(run_dir: str | Path) -> Path:
    return checkpoint_dir(run_dir) / LAST_CHECKPOINT


def epoch_checkpoint(run_dir: str | Path, epoch: int) -> Path:
    """The kept checkpoint written at the end of `epoch` (0-based): `checkpoints/epoch-0001.pt` for epoch 0."""
    return checkpoint_dir(run_dir) / f"epoch-{epoch + 1:04d}.pt"


def eval_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / EVAL


def metrics_path(run_dir: str | Path) -> Path:
    return eval_dir(run_dir) / METRICS


def history_path(run_dir: str | Path) -> Path:
    return eval_dir(run_dir) / HISTORY
