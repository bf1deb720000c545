"""The `shard-build` stage: synthesize + build on rank 0, no-op reruns, other ranks wait for the manifest."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from wam_pipe.data.manifest import read_manifest
from wam_pipe.errors import UserError
from wam_pipe.runner.context import RunContext
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
    assert ctx.artifacts["shard-build"] == tmp_path / "shards"
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
