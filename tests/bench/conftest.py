"""Fixtures of the benchmark tests: tiny synthetic shards and a tiny CPU pipeline over them."""

from __future__ import annotations

from pathlib import Path

import pytest

from wam_pipe.cli import main

TINY = """\
version: 1
name: bench-tiny
run: {{seed: 0, log_every: 2, tensorboard: false, device: cpu}}
stages:
  load:
    _target_: wam_pipe.stages.Load
    shards: {shards}
    size: 32
    batch_size: 4
    workers: 1
  augment:
    _target_: wam_pipe.stages.Augment
    masks: {{_target_: wam_pipe.augment.MaskSampler, full: 0.5, box: 0.5, irregular: 0.0, segm: 0.0}}
    augs:
      identity: {{_target_: wam_pipe.augment.Identity}}
      hflip: {{_target_: wam_pipe.augment.HorizontalFlip}}
  step:
    _target_: wam_pipe.stages.Step
    embedder: {{_target_: wam_pipe.models.ConvEmbedder, nbits: 8, channels: 8}}
    extractor: {{_target_: wam_pipe.models.ConvExtractor, nbits: 8, channels: 8, depth: 1}}
    img_size: 32
    scaling_w: 1.0
    optimizer: {{_target_: torch.optim.AdamW, _partial_: true, lr: 1.0e-3}}
    losses: {{_target_: wam_pipe.losses.WatermarkLosses, detection: 1.0, decoding: 1.0, balanced: true}}
"""


@pytest.fixture(scope="session")
def bench_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 synthetic images as 8 shards of 32-px samples."""
    root = tmp_path_factory.mktemp("bench_data")
    assert main(["data", "synth", "--out", str(root / "coco"), "--images", "48", "--min-size", "40",
                 "--max-size", "80", "--seed", "2"]) == 0
    assert main(["shard", "build", "--images", str(root / "coco" / "images"), "--annotations",
                 str(root / "coco" / "annotations.json"), "--out", str(root / "shards"), "--size", "32",
                 "--samples-per-shard", "6", "--workers", "1"]) == 0
    return root / "shards"


@pytest.fixture
def bench_pipeline(bench_shards: Path, tmp_path: Path) -> Path:
    path = tmp_path / "bench-tiny.yaml"
    path.write_text(TINY.format(shards=bench_shards))
    return path
