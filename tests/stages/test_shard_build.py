"""The `shard-build` stage: synthesize + build on rank 0, no-op reruns, other ranks wait for the manifest."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from wam_pipe.data.shards.manifest import read_manifest
from wam_pipe.core.errors import UserError
from wam_pipe.core.context import RunContext
from wam_pipe.stages import ShardBuild


def _ctx(tmp_path: Path, rank: int = 0, world: int = 1, messages: list | None = None) -> RunContext:
    log = messages.append if messages is not None else (lambda message: None)
    return RunContext(run_dir=tmp_path / "run", rank=rank, world_size=world, log=log)


def _stage(tmp_path: Path, **kw) -> ShardBuild:
    settings = {"images": str(tmp_path / "coco" / "images"), "annotations": str(tmp_path / "coco" / "ann.json"),
                "out": str(tmp_path / "shards"), "size": 64, "samples_per_shard": 8, "workers": 1, **kw}
    return ShardBuild(**settings)


def test_constructor_is_cheap(tmp_path):
    _stage(tmp_path, synthesize=10)
    assert list(tmp_path.iterdir()) == []


def test_synthesize_then_build_then_noop(tmp_path):
    messages: list[str] = []
    ctx = _ctx(tmp_path, messages=messages)
    _stage(tmp_path, synthesize=20).run(ctx)
    manifest = read_manifest(tmp_path / "shards")
    assert manifest["totals"]["samples"] == 20 and len(manifest["shards"]) == 3
    assert any("synthetic COCO dataset of 20 images" in m for m in messages)
    assert any("built 3 shards" in m for m in messages)
    messages.clear()
    started = time.perf_counter()
    _stage(tmp_path, synthesize=20).run(_ctx(tmp_path, messages=messages))
    assert time.perf_counter() - started < 5
    assert any("is up to date" in m for m in messages) and not any("synthetic" in m for m in messages)


def test_changed_settings_need_overwrite(tmp_path):
    _stage(tmp_path, synthesize=12).run(_ctx(tmp_path))
    with pytest.raises(UserError, match="--overwrite"):
        _stage(tmp_path, synthesize=12, quality=80).run(_ctx(tmp_path))
    _stage(tmp_path, synthesize=12, quality=80, overwrite=True).run(_ctx(tmp_path))
    assert read_manifest(tmp_path / "shards")["settings"]["quality"] == 80


def test_other_ranks_wait_for_rank_zero(tmp_path):
    waiter = _stage(tmp_path, synthesize=12)
    finished: list[bool] = []
    thread = threading.Thread(target=lambda: (waiter.run(_ctx(tmp_path, rank=1, world=2)), finished.append(True)))
    thread.start()
    time.sleep(1.5)
    assert not finished  # still waiting: no manifest yet
    _stage(tmp_path, synthesize=12).run(_ctx(tmp_path, rank=0, world=2))
    thread.join(timeout=10)
    assert finished == [True]


def test_waiting_rank_gives_up_with_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="not written by rank 0 within 0 s"):
        _stage(tmp_path, wait_timeout_s=0.1).run(_ctx(tmp_path, rank=1, world=2))


def test_check_config_reports_every_value_the_build_would_refuse():
    """`wam-pipe validate` gets the build's own range checks (`BuildConfig.value_problems`) plus the stage's."""
    node = {"_target_": "wam_pipe.stages.ShardBuild", "images": "i", "annotations": "a.json", "out": "o",
            "size": 4, "workers": -1, "quality": 101, "synthesize": -1, "wait_timeout_s": 0}
    assert ShardBuild.check_config(node) == [
        ("size", "must be >= 8, got 4"), ("quality", "must be in 1..100, got 101"),
        ("workers", "must be >= 0 (unset = all cores), got -1"), ("synthesize", "must be >= 0 (0 = off), got -1"),
        ("wait_timeout_s", "must be > 0, got 0")]
    clean = {k: v for k, v in node.items() if k in ("_target_", "images", "annotations", "out")}
    assert ShardBuild.check_config(clean) == []  # paths are checked when the build starts, not here
    assert ShardBuild.check_config({**clean, "sizes": 64}) == []  # a wrong name is the signature check's to report
