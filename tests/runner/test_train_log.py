"""`TrainLog` on resume: records of steps after the checkpoint (redone by the resumed run) are dropped."""

from __future__ import annotations

import json
from pathlib import Path

from wam_pipe.core.context import RunContext
from wam_pipe.runner.train_log import TrainLog, discard_records_after


def _write(path: Path, records: list[dict], tail: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)


def _steps(path: Path) -> list[int]:
    return [json.loads(line)["step"] for line in path.read_text().splitlines()]


def test_resume_drops_log_and_eval_history_records_after_the_checkpoint(tmp_path):
    log, history = tmp_path / "log.jsonl", tmp_path / "eval" / "history.jsonl"
    _write(log, [{"kind": "train", "step": s} for s in range(1, 9)] + [{"kind": "epoch", "step": 4}],
           tail='{"kind": "train", "st')                                   # a write cut short by the kill
    _write(history, [{"epoch": 0, "step": 4}, {"epoch": 1, "step": 8}])
    messages = []
    TrainLog(RunContext(run_dir=tmp_path, log=messages.append), tmp_path, start_step=4)
    assert _steps(log) == [1, 2, 3, 4, 4] and _steps(history) == [4]
    assert len(messages) == 2 and "dropped 5 record(s) after step 4" in messages[0]
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_fresh_start_in_a_resumed_run_dir_keeps_nothing(tmp_path):
    """Killed before its first checkpoint: the run starts again at step 0, so none of its records stay."""
    _write(tmp_path / "log.jsonl", [{"kind": "train", "step": 1}, {"kind": "train", "step": 2}])
    TrainLog(RunContext(run_dir=tmp_path, log=lambda m: None), tmp_path)
    assert (tmp_path / "log.jsonl").read_text() == ""


def test_nothing_to_drop_leaves_the_file_untouched(tmp_path):
    path = tmp_path / "log.jsonl"
    _write(path, [{"kind": "train", "step": 1}, {"note": "no step"}])
    before = path.stat().st_mtime_ns
    assert discard_records_after(path, 1) == 0 and path.stat().st_mtime_ns == before
    assert discard_records_after(tmp_path / "missing.jsonl", 0) == 0


def test_other_ranks_never_touch_the_files(tmp_path):
    _write(tmp_path / "log.jsonl", [{"kind": "train", "step": 5}])
    TrainLog(RunContext(run_dir=tmp_path, rank=1, world_size=2), tmp_path)
    assert _steps(tmp_path / "log.jsonl") == [5]
