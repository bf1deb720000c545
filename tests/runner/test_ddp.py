"""Two processes on the CPU (gloo) through the real launchers: `wam-pipe run --nproc 2` and `torchrun -m wam_pipe`.

Each rank records what it saw (tests/runner/ddp_helpers.py): the tests check that the ranks read disjoint data, keep
identical weights, all-reduce once per update (not per micro-batch under gradient accumulation, never for an
unused discriminator), that the loss follows a one-process run with the same global batch, that a run started on
two processes resumes on one, and that DDP's static graph is used where it works and refused where it silently
breaks (with the balanced loss's gradients taken before backward, the ranks stop all-reducing after one update).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow  # five multi-process runs: ~1 minute on two cores

HERE = Path(__file__).resolve().parent
PIPELINE = """\
version: 1
name: ddp-tiny
allow_targets: ["ddp_helpers.*"]
run: {{seed: 3, epochs: 1, log_every: 1, eval_every: 0, deterministic: true, tensorboard: false, device: cpu}}
stages:
  load:
    _target_: ddp_helpers.RecordingLoad
    shards: {shards}
    size: 32
    batch_size: 4
    workers: 0
  augment:
    _target_: wam_pipe.stages.Augment
    # Whole-image watermarks and no augmentation: the per-batch random draws (mask kind, inversion, augmentation)
    # would make two runs' loss curves too noisy to compare over a few steps.
    masks: {{_target_: wam_pipe.augment.MaskSampler, full: 1.0, box: 0.0, irregular: 0.0, segm: 0.0,
             invert_proba: 0.0}}
  step:
    _target_: ddp_helpers.RecordingStep
    embedder: {{_target_: wam_pipe.models.ConvEmbedder, nbits: 8, channels: 8}}
    extractor: {{_target_: wam_pipe.models.ConvExtractor, nbits: 8, channels: 8, depth: 1}}
    img_size: 32
    scaling_w: 1.0
    optimizer: {{_target_: torch.optim.AdamW, _partial_: true, lr: 1.0e-2}}
    losses: {{_target_: wam_pipe.losses.WatermarkLosses, detection: 1.0, decoding: 1.0, balanced: false}}
    discriminator: {{_target_: wam_pipe.models.PatchDiscriminator, ndf: 8, norm_groups: 2}}
"""
SAMPLES = 48  # the tiny_shards fixture: 48 samples in 6 shards


def _launch(command: list[str], record: Path) -> subprocess.CompletedProcess:
    record.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
           "WAM_TEST_RECORD": str(record), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _wam(*args: str) -> list[str]:
    return [sys.executable, "-m", "wam_pipe", *args]


def _ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _keys(record: Path, rank: int, epoch: int) -> list[str]:
    return (record / f"keys-r{rank}-e{epoch}.txt").read_text().split()


def _stats(record: Path, rank: int, epoch: int) -> dict:
    return json.loads((record / f"stats-r{rank}-e{epoch}.json").read_text())


def _weights(record: Path, rank: int, epoch: int) -> dict[str, torch.Tensor]:
    return torch.load(record / f"weights-r{rank}-e{epoch}.pt", weights_only=True)


@pytest.fixture(scope="module")
def pipeline(tiny_shards, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ddp") / "ddp-tiny.yaml"
    path.write_text(PIPELINE.format(shards=tiny_shards))
    return path


@pytest.fixture(scope="module")
def two_ranks(pipeline, tmp_path_factory) -> tuple[Path, Path]:
    """One epoch on 2 processes, 4 samples each per step, through `wam-pipe run --nproc 2`."""
    root = tmp_path_factory.mktemp("two_ranks")
    _ok(_launch(_wam("run", str(pipeline), "--nproc", "2", "--output-dir", str(root / "run")), root / "record"))
    return root / "run", root / "record"


@pytest.fixture(scope="module")
def one_rank_same_global_batch(pipeline, tmp_path_factory) -> Path:
    """The same epoch on 1 process with 8 samples per step."""
    root = tmp_path_factory.mktemp("one_rank")
    _ok(_launch(_wam("run", str(pipeline), "stages.load.batch_size=8", "--output-dir", str(root / "run")),
                root / "record"))
    return root / "record"


def test_ranks_read_disjoint_data_covering_the_epoch(two_ranks):
    _, record = two_ranks
    rank0, rank1 = _keys(record, 0, 0), _keys(record, 1, 0)
    assert len(rank0) == len(rank1) == SAMPLES // 2
    assert not set(rank0) & set(rank1)
    assert len(set(rank0) | set(rank1)) == SAMPLES


def test_weights_stay_identical_and_each_update_all_reduces_once(two_ranks):
    run_dir, record = two_ranks
    first, second = _weights(record, 0, 0), _weights(record, 1, 0)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    saved = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]  # written by rank 0
    assert all(torch.equal(saved[name], first[f"model.{name}"]) for name in saved)
    for rank in (0, 1):
        stats = _stats(record, rank, 0)
        steps = len(stats["losses"])
        assert steps == SAMPLES // 8 and stats["world_size"] == 2
        # DDP's static graph (on by itself here: one watermark count, no accumulation, no balancing), one
        # bucket all-reduced per update.
        assert stats["ddp"]["model"] == {"static_graph": True, "bucket_view": True}
        assert stats["allreduces"]["model"] == steps
        assert "discriminator" not in stats["allreduces"]  # adversarial weight 0: not built, not all-reduced


def test_only_rank_zero_writes_the_run(two_ranks):
    run_dir, _ = two_ranks
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, SAMPLES // 8 + 1))
    assert len([r for r in records if r["kind"] == "epoch"]) == 1
    assert json.loads((run_dir / "env.json").read_text())["world_size"] == 2


def test_loss_follows_a_one_process_run_with_the_same_global_batch(two_ranks, one_rank_same_global_batch):
    _, record = two_ranks
    # The global batch's loss on 2 ranks is the mean of the ranks' (equal-sized) batch losses.
    ranks = torch.tensor([_stats(record, rank, 0)["losses"] for rank in (0, 1)])       # (2, steps, 2)
    two = ranks.mean(dim=0)                                                              # (steps, 2)
    one = torch.tensor(_stats(one_rank_same_global_batch, 0, 0)["losses"])             # (steps, 2)
    assert two.shape == one.shape == (SAMPLES // 8, 2)
    assert _stats(one_rank_same_global_batch, 0, 0)["allreduces"] == {}  # one process: no DDP
    # Other samples per step and other random messages, but the same initial model, data and global batch: the
    # detection loss falls by ~0.14 over the epoch in both runs, and they stay within 0.05 of each other at every
    # step (seen: < 0.02).
    assert two[-1, 0] < two[0, 0] - 0.08 and one[-1, 0] < one[0, 0] - 0.08
    assert torch.allclose(two, one, atol=0.05), (two, one)


def test_a_two_process_run_resumes_on_one_process(two_ranks, pipeline):
    run_dir, record = two_ranks
    result = _ok(_launch(_wam("run", str(pipeline), "run.epochs=2", "--output-dir", str(run_dir)), record))
    assert "resuming" in result.stdout
    checkpoint = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["epoch"] == 2 and checkpoint["step"] == SAMPLES // 8 + SAMPLES // 4
    assert len(_keys(record, 0, 1)) == SAMPLES and not (record / "keys-r1-e1.txt").exists()
    assert _stats(record, 0, 1)["world_size"] == 1


def test_accumulation_and_balancing_all_reduce_per_update_and_an_idle_discriminator_never(pipeline, tmp_path):
    # Through torchrun itself. Two micro-batches per update (no_sync on the first), the balanced loss (gradient
    # norms taken before backward: dynamic graph); the discriminator is built (adversarial > 0) but only trains
    # from epoch 1.
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m",
               "wam_pipe", "run", str(pipeline), "--output-dir", str(tmp_path / "run"), "run.epochs=2",
               "++run.steps_per_epoch=4", "stages.step.grad_accum=2", "stages.step.losses.balanced=true",
               "stages.step.losses.adversarial=0.1", "stages.step.losses.disc_start=1"]
    _ok(_launch(command, tmp_path / "record"))
    for epoch in (0, 1):
        first, second = _weights(tmp_path / "record", 0, epoch), _weights(tmp_path / "record", 1, epoch)
        assert all(torch.equal(first[name], second[name]) for name in first)
        assert any(name.startswith("disc.") for name in first)
    idle, active = _stats(tmp_path / "record", 0, 0), _stats(tmp_path / "record", 0, 1)
    assert idle["ddp"]["model"]["static_graph"] is False  # turned off by itself
    assert idle["allreduces"] == {"model": 2, "discriminator": 0}  # 4 micro-batches = 2 updates
    assert active["allreduces"] == {"model": 2, "discriminator": 2}


def test_static_graph_with_the_balanced_loss_is_refused_on_every_rank(pipeline, tmp_path):
    result = _launch(_wam("run", str(pipeline), "--nproc", "2", "--output-dir", str(tmp_path / "run"),
                          "stages.step.losses.balanced=true", "++run.ddp_static_graph=true"), tmp_path / "record")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "run.ddp_static_graph: true does not work with step.losses.balanced: true" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
