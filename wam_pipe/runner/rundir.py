"""The run directory: what a run records about itself, and the rules for reusing one.

    <run>/config.yaml      the composed pipeline, overrides applied, interpolations kept (`wam-pipe run` it again)
    <run>/resolved.yaml    the same, fully resolved
    <run>/overrides.txt    the command-line overrides, one per line (appended on each resume)
    <run>/env.json         versions, git SHA and dirty flag, host, device
    <run>/log.jsonl        training log; <run>/checkpoints/last.pt; <run>/eval/ ...
    <run>/slurm/<job>/     `wam-pipe submit`'s job logs (written before the run starts; kept by --overwrite)

A non-empty run dir is refused unless it holds a run of the same pipeline (then the run resumes from its last
checkpoint) or `--overwrite` is given. Settings that do not change what was already computed may differ on resume.
A dir holding only the record of a run that failed before doing any work (config.yaml, resolved.yaml,
overrides.txt, env.json and nothing else) is reused with any configuration. A non-empty dir that is not a run dir
(no resolved.yaml) is never written to, with or without `--overwrite`.
"""

from __future__ import annotations

import json
import platform
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from wam_pipe.core import run_layout as layout
from wam_pipe.core import safe_yaml
from wam_pipe.core.atomic import atomic_write_text, temp_path
from wam_pipe.core.disk_full import no_space_names
from wam_pipe.core.errors import UserError
from wam_pipe.runner.tracking import TRACKER_IDS

# May differ between a run and its resume: they change speed, cadence or length, not completed work.
RESUMABLE_CHANGES = (
    "run.epochs", "run.eval_every", "run.log_every", "run.checkpoint_every", "run.keep_checkpoints",
    "run.tensorboard", "run.loggers", "run.project", "run.tags", "run.output_dir", "run.max_nonfinite_steps", "run.cudnn_benchmark", "run.dist_backend",
    "stages.load.workers", "stages.load.prefetch_factor", "stages.load.persistent_workers", "stages.load.pin_memory",
)
# Slurm job logs that `wam-pipe submit` puts in the run dir before the job starts: not part of the run.
SLURM_DIR = "slurm"
_PACKAGES = ("wam-pipe", "torch", "torchvision", "hydra-zen", "hydra-core", "omegaconf", "webdataset", "pycocotools",
             "numpy", "pillow")


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out or {prefix: {}}
    return {prefix: data}


def config_differences(old: dict, new: dict) -> list[str]:
    """Dotted keys whose values differ, ignoring RESUMABLE_CHANGES."""
    a, b = _flatten(old), _flatten(new)
    keys = sorted(set(a) | set(b))
    return [k for k in keys if a.get(k, "<absent>") != b.get(k, "<absent>") and not k.startswith(RESUMABLE_CHANGES)]


def _entries(run_dir: Path) -> list[Path]:
    """What the dir holds, less the Slurm job logs (`wam-pipe submit` writes them before the run starts)."""
    return [entry for entry in run_dir.iterdir() if not (entry.name == SLURM_DIR and entry.is_dir())]


def _only_run_record(run_dir: Path) -> bool:
    """The dir holds nothing but what `write_run_files` writes first: a run that failed before doing any work."""
    record = {*layout.RUN_RECORD, *(temp_path(name).name for name in layout.RUN_RECORD)}
    return all(entry.is_file() and entry.name in record for entry in _entries(run_dir))


def inspect_run_dir(run_dir: Path, resolved: dict, overwrite: bool) -> tuple[str, Path | None]:
    """Decide what to do with `run_dir` without touching it: ("new" | "overwrite" | "resume", checkpoint).

    A dir that holds only a run's record (config files, no log, checkpoint or output: the run failed before its
    first step, e.g. on a missing checkpoint) is reused whatever its configuration, as if it were empty.
    """
    if not run_dir.exists() or (run_dir.is_dir() and not _entries(run_dir)):
        return "new", None
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: exists and is not a directory; choose another run.output_dir or --output-dir")
    saved = run_dir / layout.RESOLVED
    if not saved.is_file():
        raise UserError(f"{run_dir}: not empty and not a wam-pipe run dir (no resolved.yaml), so it is never "
                        f"overwritten; choose another --output-dir (or run.output_dir)")
    if overwrite:
        return "overwrite", None
    old = safe_yaml.safe_load(saved.read_text(), saved) or {}
    differences = config_differences(old, resolved)
    if differences and _only_run_record(run_dir):
        return "overwrite", None
    if differences:
        shown = ", ".join(differences[:4]) + (f" and {len(differences) - 4} more" if len(differences) > 4 else "")
        raise UserError(f"{run_dir}: holds a run of a different configuration ({shown} differ); use --overwrite to "
                        f"replace it, or --output-dir DIR for a new run")
    checkpoint = layout.last_checkpoint(run_dir)
    return "resume", checkpoint if checkpoint.is_file() else None


def write_run_files(run_dir: Path, config_yaml: str, resolved_yaml: str, overrides: list[str], device: str,
                    world_size: int, fresh: bool) -> None:
    """Write the run's record (rank 0 only). On resume, config files are refreshed and overrides appended."""
    if fresh and run_dir.exists():
        clear_run_outputs(run_dir)
    with no_space_names(run_dir):
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / layout.CONFIG, config_yaml)
        atomic_write_text(run_dir / layout.RESOLVED, resolved_yaml)
        with open(run_dir / layout.OVERRIDES, "a") as f:
            f.writelines(f"{o}\n" for o in overrides)
        atomic_write_text(run_dir / layout.ENV, json.dumps(environment(device, world_size), indent=2) + "\n")


# What a run writes in its run dir: `--overwrite` deletes these and nothing else (notes, folders or a copied
# checkpoint the user put there stay, as `shard build --overwrite` keeps files it did not write).
RUN_OUTPUTS = (*layout.RUN_RECORD, layout.LOG, layout.CURVES, TRACKER_IDS, "mlflow.db")
RUN_OUTPUT_DIRS = (layout.EVAL, layout.TENSORBOARD, "wandb", "mlartifacts")
CHECKPOINT_PATTERNS = (layout.LAST_CHECKPOINT, "epoch-*.pt", ".*.pt.tmp")


def clear_run_outputs(run_dir: Path) -> None:
    """Delete what wam-pipe wrote in `run_dir` (see `RUN_OUTPUTS`), keeping everything else."""
    for name in RUN_OUTPUTS:
        for path in (run_dir / name, temp_path(run_dir / name)):
            path.unlink(missing_ok=True)
    for name in RUN_OUTPUT_DIRS:
        if (run_dir / name).is_dir():
            shutil.rmtree(run_dir / name)
    checkpoints = layout.checkpoint_dir(run_dir)
    if checkpoints.is_dir():
        for pattern in CHECKPOINT_PATTERNS:
            for path in checkpoints.glob(pattern):
                path.unlink()
        if not any(checkpoints.iterdir()):
            checkpoints.rmdir()


def _git(*args: str) -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def environment(device: str, world_size: int) -> dict[str, Any]:
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    status = _git("status", "--porcelain")
    return {
        "versions": {"python": sys.version.split()[0], **versions},
        "git": {"sha": _git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None},
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "device": device,
        "world_size": world_size,
        "command": sys.argv,
    }
