"""Training on the data sources beyond COCO, through the real CLI: SA-1B tars, a photo folder, a weighted mix on
2 CPU ranks (gloo). Each run is a few steps of the quickstart's conv models at 32 px."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from wam_pipe.cli import main

pytestmark = pytest.mark.slow  # three real runs (one on 2 processes): ~1 minute on two cores

HERE = Path(__file__).resolve().parent
PIPELINE = """\
version: 1
name: sources
allow_targets: ["ddp_helpers.*"]
run: {{seed: 5, epochs: 1, steps_per_epoch: {steps}, log_every: 1, eval_every: 0, tensorboard: false, device: cpu}}
stages:
{build}
  load:
    _target_: {load_target}
{source}
    size: 32
    batch_size: 4
    workers: {workers}
  augment:
    _target_: wam_pipe.stages.Augment
    masks: {{_target_: wam_pipe.augment.MaskSampler, full: 0.25, box: 0.5, irregular: 0.0, segm: {segm}}}
  step:
    _target_: wam_pipe.stages.Step
    embedder: {{_target_: wam_pipe.models.ConvEmbedder, nbits: 8}}
    extractor: {{_target_: wam_pipe.models.ConvExtractor, nbits: 8, img_size: 32}}
    img_size: 32
    scaling_w: 0.5
    optimizer: {{_target_: torch.optim.AdamW, _partial_: true, lr: 2.0e-3}}
    losses: {{_target_: wam_pipe.losses.WatermarkLosses, detection: 1.0, decoding: 10.0, balanced: false}}
"""


def _run(tmp_path: Path, name: str, nproc: int = 1, **fields) -> subprocess.CompletedProcess:
    fields = {"steps": 3, "build": "", "load_target": "wam_pipe.stages.Load", "workers": 0, "segm": 0.0, **fields}
    path = tmp_path / f"{name}.yaml"
    path.write_text(PIPELINE.format(**fields))
    record = tmp_path / f"{name}-record"
    record.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
           "WAM_TEST_RECORD": str(record), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "wam_pipe", "run", str(path), "--output-dir", str(tmp_path / f"{name}-run")]
    if nproc > 1:
        command += ["--nproc", str(nproc)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def sa1b_tars(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sa1b_tars")
    assert main(["data", "synth", "--format", "sa1b", "--out", str(root), "--images", "24", "--per-tar", "8",
                 "--width", "72", "--height", "48", "--masks", "5"]) == 0
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A folder of 24 photos without annotations (real JPEGs, two levels)."""
    root = tmp_path_factory.mktemp("photos")
    assert main(["data", "synth", "--out", str(root / "coco"), "--images", "24", "--min-size", "40",
                 "--max-size", "80", "--seed", "2", "--workers", "1"]) == 0
    for i, path in enumerate(sorted((root / "coco" / "images").glob("*.jpg"))):
        target = root / "photos" / ("trip" if i % 2 else ".") / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    return root / "photos"


def test_sa1b_tars_build_in_the_pipeline_and_train_with_segm_masks(sa1b_tars, tmp_path):
    build = ("  shard-build:\n    _target_: wam_pipe.stages.ShardBuild\n"
             f"    sa1b: [{sa1b_tars}/*.tar]\n    out: {tmp_path / 'shards'}\n    size: 32\n"
             "    samples_per_shard: 4\n    max_masks: 3\n    workers: 1")
    result = _run(tmp_path, "sa1b", build=build, source="    shards: ${stages.shard-build.out}", segm=0.25)
    assert "shard-build: built 6 shards (24 images)" in result.stdout + result.stderr
    log = (tmp_path / "sa1b-run" / "log.jsonl").read_text().splitlines()
    assert len([line for line in log if "loss" in line]) >= 3


def test_a_photo_folder_builds_and_trains_with_box_masks(photos, tmp_path):
    build = ("  shard-build:\n    _target_: wam_pipe.stages.ShardBuild\n"
             f"    images: {photos}\n    out: {tmp_path / 'shards'}\n    size: 32\n    samples_per_shard: 4\n"
             "    workers: 1")
    result = _run(tmp_path, "photos", build=build, source="    shards: ${stages.shard-build.out}")
    assert "24 samples" in result.stdout + result.stderr and "0 instances" in result.stdout + result.stderr
    log = (tmp_path / "photos-run" / "log.jsonl").read_text().splitlines()
    assert len([line for line in log if "loss" in line]) >= 3


def test_a_weighted_mix_trains_on_two_ranks_with_equal_batches_and_the_logged_mix(sa1b_tars, photos, tmp_path):
    assert main(["shard", "build", "--sa1b", str(sa1b_tars), "--out", str(tmp_path / "sa1b"), "--size", "32",
                 "--samples-per-shard", "4", "--workers", "1"]) == 0
    assert main(["shard", "build", "--images", str(photos), "--out", str(tmp_path / "mine"), "--size", "32",
                 "--samples-per-shard", "4", "--workers", "1"]) == 0
    source = (f"    mix: [{{shards: {tmp_path / 'sa1b'}, weight: 0.7}}, {{shards: {tmp_path / 'mine'}, weight: 0.3}}]\n"
              "    epoch_batches: 12")
    result = _run(tmp_path, "mix", nproc=2, steps=12, load_target="ddp_helpers.RecordingLoad", source=source,
                  workers=1)
    record = tmp_path / "mix-record"
    keys = {rank: (record / f"keys-r{rank}-e0.txt").read_text().split() for rank in (0, 1)}
    assert len(keys[0]) == len(keys[1]) == 12 * 4  # every rank: epoch_batches batches of 4
    realized = Counter(key.split("/")[0] for rank_keys in keys.values() for key in rank_keys)
    logged = re.search(r"load: epoch 0 mix over 12 batches x 2 ranks: sa1b ([\d.]+) \((\d+) samples\), "
                       r"mine ([\d.]+) \((\d+) samples\)", result.stdout + result.stderr)
    assert logged, result.stdout[-2000:]
    assert (int(logged.group(2)), int(logged.group(4))) == (realized["sa1b"], realized["mine"])
    assert 0.5 < realized["sa1b"] / 96 < 0.9  # drawn at 0.7
