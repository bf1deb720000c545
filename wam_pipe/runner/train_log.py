"""`TrainLog`: rank 0's record of training: console lines (with an ETA), `<run>/log.jsonl`, and the trackers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from wam_pipe.core import run_layout as layout
from wam_pipe.core.atomic import atomic_write_bytes
from wam_pipe.core.context import RunContext
from wam_pipe.core.disk_full import no_space_names
from wam_pipe.runner.meter import format_metrics


class TrainLog:
    """One JSON object per log line in `<run>/log.jsonl` (read by the curves plot and `wam-pipe report`).

    A run restarts from its last checkpoint, so the steps it logged after that checkpoint are done again: the
    constructor drops their records (`start_step` = the checkpoint's step, 0 for a fresh start) from `log.jsonl`
    and from the evaluation history `<run>/eval/history.jsonl` (TensorBoard purges its own, see
    `wam_pipe.runner.tracking`), so every step appears once. Each line also goes to `ctx.tracker`.
    """

    def __init__(self, ctx: RunContext, run_dir: Path, start_step: int = 0, total_steps: int | None = None):
        self.ctx = ctx
        self.path = layout.log_path(run_dir)
        # ETA: the pace of this start of the run (a resumed run's earlier pace is unknown).
        self.start_step, self.total_steps, self.started = start_step, total_steps, time.perf_counter()
        if not ctx.is_main:
            return
        for path in (self.path, layout.history_path(run_dir)):
            dropped = discard_records_after(path, start_step)
            if dropped:
                ctx.log(f"{path}: dropped {dropped} record(s) after step {start_step} (the checkpoint this run "
                        f"resumes from); they are logged again as the steps are redone")

    def log(self, kind: str, epoch: int, step: int, values: dict[str, Any], extra: str = "") -> None:
        if not self.ctx.is_main:
            return
        record = {"kind": kind, "epoch": epoch, "step": step, "time": round(time.time(), 3), **values}
        with no_space_names(self.path), open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        self.ctx.tracker.log_scalars(kind, step, values)
        tail = " | ".join(part for part in (extra, self.eta(step)) if part)
        self.ctx.log(f"[{kind}] epoch {epoch} step {step} | {format_metrics(values)}{' | ' + tail if tail else ''}")

    def eta(self, step: int) -> str:
        """`eta 1h02m` from the mean time per step since this start; "" before the first step or without a total."""
        done = step - self.start_step
        if not self.total_steps or done <= 0 or step >= self.total_steps:
            return ""
        seconds = (time.perf_counter() - self.started) / done * (self.total_steps - step)
        return f"eta {format_duration(seconds)}"


def format_duration(seconds: float) -> str:
    """`45s`, `12m05s`, `3h07m`."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def discard_records_after(path: Path, step: int) -> int:
    """Keep the JSON-lines records of `path` with `"step"` <= `step` (and those without a step); drop the rest and
    any line that is not valid JSON (a write cut short by a kill). The file is replaced atomically
    (`wam_pipe.core.atomic`: temp name, fsync, rename) and only when something is dropped. Returns the number of
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
