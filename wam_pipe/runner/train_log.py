"""`TrainLog`: rank 0's record of training: console lines, `<run>/log.jsonl`, optional TensorBoard events."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from wam_pipe.runner.context import RunContext
from wam_pipe.runner.meter import format_metrics


class TrainLog:
    """One JSON object per log line in `<run>/log.jsonl` (read by the curves plot and `wam-pipe report`)."""

    def __init__(self, ctx: RunContext, run_dir: Path, tensorboard: bool):
        self.ctx = ctx
        self.path = run_dir / "log.jsonl"
        self.writer = None
        if ctx.is_main and tensorboard:
            self.writer = _tensorboard_writer(run_dir / "tb", ctx)

    def log(self, kind: str, epoch: int, step: int, values: dict[str, Any], extra: str = "") -> None:
        if not self.ctx.is_main:
            return
        record = {"kind": kind, "epoch": epoch, "step": step, "time": round(time.time(), 3), **values}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for name, value in values.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{kind}/{name}", value, step)
            self.writer.flush()
        self.ctx.log(f"[{kind}] epoch {epoch} step {step} | {format_metrics(values)}{' | ' + extra if extra else ''}")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _tensorboard_writer(folder: Path, ctx: RunContext) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        ctx.log("note: tensorboard is not installed, so no event files are written (pip install tensorboard)")
        return None
    return SummaryWriter(log_dir=str(folder))
