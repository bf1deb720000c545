"""Faults in two-process runs (gloo, CPU, through `wam-pipe run --nproc 2`): a rank killed while writing a
checkpoint, and one rank meeting a damaged sample while the other is healthy. Every run has a subprocess timeout, so
a hang fails the test instead of hanging it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wam_pipe.core.checkpoint import KILL_HOOK_ENV, load_checkpoint

pytestmark = pytest.mark.slow  # three or four two-process runs

PIPELINE = """\
version: 1
name: ddp-faults
run: {{seed: 3, epochs: {epochs}, log_every: 1, eval_every: 0, tensorboard: false, device: cpu}}
stages:
  load: {{_target_: wam_pipe.stages.Load, shards: {shards}, size: 32, batch_size: 4, workers: 0, random_subset: 0.0}}
  step:
    _target_: wam_pipe.stages.Step
    embedder: {{_target_: wam_pipe.models.ConvEmbedder, nbits: 8, channels: 8}}
    extractor: {{_target_: wam_pipe.models.ConvExtractor, nbits: 8, channels: 8, depth: 1}}
    img_size: 32
    optimizer: {{_target_: torch.optim.AdamW, _partial_: true, lr: 1.0e-2}}
    losses: {{_target_: wam_pipe.losses.WatermarkLosses, detection: 1.0, decoding: 1.0, balanced: false}}
"""


def _run(pipeline: Path, out: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "wam_pipe", "run", str(pipeline), "--nproc", "2", "--output-dir", str(out)]
    return subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, capture_output=True,
                          text=True, timeout=400)


def test_a_rank_killed_while_writing_a_checkpoint_leaves_the_previous_one_and_the_rerun_resumes(tiny_shards,
                                                                                                tmp_path):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(PIPELINE.format(epochs=2, shards=tiny_shards))
    out = tmp_path / "run"
    killed = _run(pipeline, out, {KILL_HOOK_ENV: "2"})  # rank 0 (the writer) dies inside the epoch-2 save
    assert killed.returncode != 0
    assert "the other ranks were stopped too" in killed.stderr
    checkpoints = out / "checkpoints"
    assert load_checkpoint(checkpoints / "last.pt")["epoch"] == 1  # the epoch-1 checkpoint, whole
    assert (checkpoints / ".last.pt.tmp").is_file()  # the write that was cut short, never renamed into place
    resumed = _run(pipeline, out)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert load_checkpoint(checkpoints / "last.pt")["epoch"] == 2


def test_a_bad_sample_on_one_rank_reaches_the_user_and_every_rank_exits(tiny_shards, tmp_path):
    from wam_pipe.data.shards.tar_io import read_samples

    shards = tmp_path / "shards"
    shutil.copytree(tiny_shards, shards)
    path = shards / "shard-000004.tar"
    sample = next(s for s in read_samples(path) if json.loads(s.meta)["annotations"])
    counts = json.loads(sample.meta)["annotations"][0]["segmentation"]["counts"]
    data = path.read_bytes()
    path.write_bytes(data.replace(counts.encode(), ("0" * (len(counts) - 1) + "1").encode(), 1))
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(PIPELINE.format(epochs=1, shards=shards))
    result = _run(pipeline, tmp_path / "run")
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"shard-000004.tar: sample {sample.key}: bad JSON or mask" in result.stderr
    assert "the other ranks were stopped too" in result.stderr and "Traceback" not in result.stderr
