"""`TrainLog`: rank 0's record of training: console lines, `<run>/log.jsonl`, optional TensorBoard events."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from wam_pipe.data.shards.tar_io import atomic_write_bytes
from wam_pipe.core.context import RunContext
from wam_pipe.core.disk_full import no_space_names
from wam_pipe.runner.meter import format_metrics


class TrainLog:
    """One JSON object per log line in `<run>/log.jsonl` (read by the curves plot and `wam-pipe report`).

    A run restarts from its last checkpoint, so the steps it logged after that checkpoint are done again: the
    constructor drops their records (`start_step` = the checkpoint's step, 0 for a fresh start) from `log.jsonl`
    and from the evaluation history `<run>/eval/history.jsonl`, and TensorBoard hides its events after that step,
    so every step appears once.
    """

    def __init__(self, ctx: RunContext, run_dir: Path, tensorboard: bool, start_step: int = 0):
        self.ctx = ctx
        self.path = run_dir / "log.jsonl"
        self.writer = None
        if not ctx.is_main:
            return
        from wam_pipe.eval.outputs import eval_dir

        for path in (self.path, eval_dir(run_dir) / "history.jsonl"):
            dropped = discard_records_after(path, start_step)
            if dropped:
                ctx.log(f"{path}: dropped {dropped} record(s) after step {start_step} (the checkpoint this run "
                        f"resumes from); they are logged again as the steps are redone")
        if tensorboard:
            folder = run_dir / "tb"
            # purge_step hides the events of the redone steps from TensorBoard.
            self.writer = _tensorboard_writer(folder, ctx, start_step + 1 if folder.is_dir() else None)

    def log(self, kind: str, epoch: int, step: int, values: dict[str, Any], extra: str = "") -> None:
        if not self.ctx.is_main:
            return
        record = {"kind": kind, "epoch": epoch, "step": step, "time": round(time.time(), 3), **values}
        with no_space_names(self.path), open(self.path, "a") as f:
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


def discard_records_after(path: Path, step: int) -> int:
    """Keep the JSON-lines records of `path` with `"step"` <= `step` (and those without a step); drop the rest and
    any line that is not valid JSON (a write cut short by a kill). The file is replaced atomically
    (`atomic_write_bytes`: temp name, fsync, rename) and only when something is dropped. Returns the number of
    dropped lines."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), (int, float)) and record["step"] > step:
            dropped += 1
            continue
        kept.append(line + "\n")
    if dropped:
        atomic_write_bytes(path, "".join(kept).encode())
    return dropped


def _tensorboard_writer(folder: Path, ctx: RunContext, purge_step: int | None) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        ctx.log("note: tensorboard is not installed, so no event files are written (pip install tensorboard)")
        return None
    return SummaryWriter(log_dir=str(folder), purge_step=purge_step)
