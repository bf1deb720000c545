"""`RunContext`: what every stage's `setup`/`run` receives from the runner."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from wam_pipe.core.tracking import NullTracker, Tracker


def _print(message: str) -> None:
    # tqdm.write lifts any progress bar on the terminal above the line instead of breaking through it.
    tqdm.write(message, file=sys.stdout)
    sys.stdout.flush()


@dataclass
class RunContext:
    """Where and how this process runs.

    Attributes:
        run_dir: the run directory (rank 0 writes into it; other ranks only read).
        device: the training device of this process.
        seed: the pipeline's `run.seed`; per-rank RNGs are seeded with `seed + rank`.
        rank / world_size / local_rank: the torch.distributed coordinates (0 / 1 / 0 without DDP).
        precision: "fp32", "bf16" or "fp16" (autocast dtype of the training step).
        log: prints a line on rank 0 (a no-op on other ranks).
        tracker: the experiment trackers of `run.loggers` on rank 0 (a no-op on other ranks and outside a run).
    """

    run_dir: Path
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    precision: str = "fp32"
    log: Callable[[str], None] = _print
    tracker: Tracker = field(default_factory=NullTracker)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1
