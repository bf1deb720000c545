"""Checkpoint and log writes on a full disk (a real, small tmpfs): one line naming the path; nothing half-written."""

from __future__ import annotations

import pytest
import torch

from wam_pipe.core.context import RunContext
from wam_pipe.core.errors import RunFailure
from wam_pipe.core.checkpoint import load_checkpoint, save_checkpoint
from wam_pipe.runner.train_log import TrainLog


def test_checkpoint_on_a_full_disk_keeps_the_previous_one(small_tmpfs):
    mount, _ = small_tmpfs
    path = mount / "checkpoints" / "last.pt"
    save_checkpoint(path, {"model": {"w": torch.zeros(10)}})
    with pytest.raises(RunFailure, match=rf"{path}: no space left on the device .*rerun the same command"):
        save_checkpoint(path, {"model": {"w": torch.zeros(200_000)}})  # 800 KB on a 256 KiB disk
    assert load_checkpoint(path)["model"]["w"].shape == (10,)  # the previous checkpoint is intact
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # the partial temp file is gone


def test_log_write_on_a_full_disk_names_the_log(small_tmpfs):
    mount, _ = small_tmpfs
    (mount / "filler").write_bytes(b"\0" * (256 * 1024 - 4096))  # leaves at most one page
    ctx = RunContext(run_dir=mount, seed=0, rank=0, world_size=1, log=lambda message: None)
    log = TrainLog(ctx, mount)
    with pytest.raises(RunFailure, match=r"log.jsonl: no space left on the device"):
        for step in range(200):
            log.log("train", 0, step, {"loss": 1.0}, extra="x" * 100)
