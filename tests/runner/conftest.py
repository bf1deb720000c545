"""A tiny end-to-end pipeline (synthetic shards, conv models, 32 px) for runner tests through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest


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


@pytest.fixture
def tiny_pipeline(tiny_shards, tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY.replace("{shards}", str(tiny_shards)))
    return path


# An eval stage for the tiny pipeline (4 held-in images, one mask, no augmentation): runs with a report.
TINY_EVAL = """\
  eval:
    _target_: wam_pipe.stages.Eval
    max_images: 4
    masks: [full]
    augs: {identity: null}
    data:
      _target_: wam_pipe.stages.Load
      shards: {shards}
      size: ${vars.size}
      batch_size: 4
      workers: 0
      shuffle: false
      drop_last: false
      random_subset: 0.0
"""


@pytest.fixture
def tiny_with_eval(tiny_shards, tmp_path) -> Path:
    path = tmp_path / "tiny_eval.yaml"
    path.write_text((TINY + TINY_EVAL).replace("{shards}", str(tiny_shards)))
    return path
