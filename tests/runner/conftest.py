"""A tiny end-to-end pipeline (synthetic shards, conv models, 32 px) for runner tests through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from wam_pipe.cli import main

TINY = """\
version: 1
name: tiny
vars: {nbits: 8, size: 32}
run: {seed: 3, epochs: 2, steps_per_epoch: 3, log_every: 1, eval_every: 0, deterministic: true, tensorboard: false}
stages:
  load:
    _target_: wam_pipe.stages.Load
    shards: {shards}
    size: ${vars.size}
    batch_size: 4
    workers: 0
  augment:
    _target_: wam_pipe.stages.Augment
    masks: {_target_: wam_pipe.augment.MaskSampler, full: 0.5, box: 0.5, irregular: 0.0, segm: 0.0}
    augs:
      identity: {_target_: wam_pipe.augment.Identity}
      rotate: {_target_: wam_pipe.augment.Rotate}
  step:
    _target_: wam_pipe.stages.Step
    embedder: {_target_: wam_pipe.models.ConvEmbedder, nbits: "${vars.nbits}", channels: 8}
    extractor: {_target_: wam_pipe.models.ConvExtractor, nbits: "${vars.nbits}", channels: 8, depth: 1}
    img_size: ${vars.size}
    scaling_w: 1.0
    optimizer: {_target_: torch.optim.AdamW, _partial_: true, lr: 3.0e-3}
    scheduler: {_target_: wam_pipe.optim.CosineWarmup, _partial_: true, warmup: 1}
    losses: {_target_: wam_pipe.losses.WatermarkLosses, detection: 1.0, decoding: 2.0, balanced: true}
"""


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_data")
    code = main(["data", "synth", "--out", str(root / "coco"), "--images", "48", "--min-size", "40",
                 "--max-size", "80", "--seed", "1"])
    assert code == 0
    code = main(["shard", "build", "--images", str(root / "coco" / "images"), "--annotations",
                 str(root / "coco" / "annotations.json"), "--out", str(root / "shards"), "--size", "32",
                 "--samples-per-shard", "8", "--workers", "1"])
    assert code == 0
    return root / "shards"


@pytest.fixture
def tiny_pipeline(tiny_shards, tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY.replace("{shards}", str(tiny_shards)))
    return path
