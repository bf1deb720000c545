"""The eval stage: metrics.json contract, pictures, config checks, and an evaluation alone from a checkpoint that
reproduces the training-time evaluation exactly (real `wam-pipe run` on synthetic shards)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image

from wam_pipe.cli import main
from wam_pipe.core.errors import UserError
from wam_pipe.eval.pictures import grid_picture_size
from wam_pipe.core.context import RunContext
from wam_pipe.stages.eval import Eval

GRID_KEYS = {"mask", "aug", "strength", "bit_acc", "msg_bit_acc", "word_acc", "acc", "iou_0", "iou_1", "miou", "psnr",
             "ssim", "images"}
MULTI_KEYS = {"source", "roll", "k", "bit_acc_first", "bit_acc", "msg_bit_acc", "word_acc", "acc", "iou_0", "iou_1",
              "miou", "images"}

PIPELINE = """\
version: 1
name: tiny-eval
run: {{device: cpu, epochs: 2, log_every: 2, seed: 0, tensorboard: false}}
stages:
  shard-build:
    _target_: wam_pipe.stages.ShardBuild
    images: {root}/synth/images
    annotations: {root}/synth/annotations.json
    out: {root}/shards
    size: 64
    samples_per_shard: 4
    workers: 1
    synthesize: 24
  load: {{_target_: wam_pipe.stages.Load, shards: {root}/shards, size: 64, batch_size: 4, workers: 0}}
  augment: {{_target_: wam_pipe.stages.Augment}}
  step:
    _target_: wam_pipe.stages.Step
    embedder: {{_target_: wam_pipe.models.ConvEmbedder, nbits: 8, channels: 8, depth: 1}}
    extractor: {{_target_: wam_pipe.models.ConvExtractor, nbits: 8, channels: 8, depth: 1, img_size: 64}}
    optimizer: {{_target_: torch.optim.AdamW, _partial_: true, lr: 0.001}}
    losses: {{_target_: wam_pipe.losses.WatermarkLosses}}
    img_size: 64
  eval:
    _target_: wam_pipe.stages.Eval
    max_images: 10
    masks: [full, box_inverted, segm]
    augs: {{identity: null, rotate: [30], jpeg: [50]}}
    multi_wm: true
    multi_wm_max: 2
    pictures: 2
    data:
      _target_: wam_pipe.stages.Load
      shards: {root}/shards
      size: 64
      batch_size: 3
      workers: 0
      shuffle: false
      drop_last: false
      random_subset: 0.0
      mask_mode: instances
      max_masks: 2
"""



@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 2-epoch training run with an eval stage; returns its paths and its final training-time metrics.json."""
    root = tmp_path_factory.mktemp("eval-stage")
    pipeline = root / "tiny.yaml"
    pipeline.write_text(PIPELINE.format(root=root))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["run", str(pipeline), "--output-dir", str(root / "run")]) == 0
    finally:
        torch.set_num_threads(before)
    metrics = json.loads((root / "run" / "eval" / "metrics.json").read_text())
    shutil.copy(root / "run" / "eval" / "metrics.json", root / "training-metrics.json")
    return {"root": root, "pipeline": pipeline, "run": root / "run", "metrics": metrics}


def test_metrics_json_contract(trained_run):
    metrics = trained_run["metrics"]
    assert metrics["epoch"] == 1 and metrics["step"] == 12  # 24 samples / 4 per batch x 2 epochs
    assert metrics["images"] == 10 and metrics["nbits"] == 8 and metrics["checkpoint"] is None
    assert metrics["settings"] == ["identity", "rotate 30", "jpeg 50"]
    rows = metrics["results"]
    assert [(r["mask"], r["aug"], r["strength"]) for r in rows] == [
        (m, a, s) for m in ("full", "box_inverted", "segm") for a, s in (("identity", None), ("rotate", 30.0),
                                                                         ("jpeg", 50.0))]
    for row in rows:
        assert set(row) == GRID_KEYS and row["images"] == 10
        for key in GRID_KEYS - {"mask", "aug", "strength", "images", "psnr"}:
            assert row[key] is None or 0.0 <= row[key] <= 1.0, (key, row)
        assert row["psnr"] > 10
    assert len(metrics["multi_wm"]) == 2 * 2 * 2 and all(set(r) == MULTI_KEYS for r in metrics["multi_wm"])
    assert {"bit_acc", "miou", "psnr", "bit_acc_identity", "multi_bit_acc_k2"} <= set(metrics["summary"])
    history = [json.loads(line) for line in (trained_run["run"] / "eval" / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history][:2] == [0, 1]  # one line per evaluation (eval_every 1)


def test_pictures_have_the_stated_sizes(trained_run):
    run = trained_run["run"]
    with Image.open(run / "eval" / "grid.png") as grid:
        assert grid.size == grid_picture_size(64, 2)
    for path in (run / "eval" / "robustness.png", run / "curves.png"):
        with Image.open(path) as image:
            assert image.size == (1200, 800)


def test_eval_alone_reproduces_the_training_time_eval(trained_run, capsys):
    # Same pipeline, same run dir, only the eval stage: it loads checkpoints/last.pt and rebuilds the model from it.
    assert main(["run", str(trained_run["pipeline"]), "--output-dir", str(trained_run["run"]), "--only", "eval"]) == 0
    out = capsys.readouterr().out
    assert "[eval] epoch 1 step 12 | 10 images" in out and "rotate 30" in out
    alone = json.loads((trained_run["run"] / "eval" / "metrics.json").read_text())
    training = json.loads((trained_run["root"] / "training-metrics.json").read_text())
    assert alone["checkpoint"].endswith("checkpoints/last.pt")
    assert (alone["epoch"], alone["step"]) == (training["epoch"], training["step"])
    assert alone["results"] == training["results"]  # exactly, not approximately
    assert alone["multi_wm"] == training["multi_wm"]


def test_shipped_eval_pipeline_evaluates_a_checkpoint(trained_run, repo_root, tmp_path, capsys):
    checkpoint = trained_run["run"] / "checkpoints" / "last.pt"
    overrides = [f"stages.eval.checkpoint={checkpoint}", f"vars.shards={trained_run['root'] / 'shards'}",
                 "vars.size=64", "stages.eval.max_images=6", "stages.eval.augs={identity: null, hflip: null}",
                 "stages.eval.multi_wm_max=2", "stages.eval.data.workers=0", "stages.eval.data.batch_size=4"]
    assert main(["run", str(repo_root / "pipelines" / "eval.yaml"), *overrides, "--output-dir", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["images"] == 6 and len(metrics["results"]) == 6 * 2
    assert {r["source"] for r in metrics["multi_wm"]} == {"boxes", "segm"}
    assert (tmp_path / "eval" / "grid.png").is_file() and (tmp_path / "eval" / "robustness.png").is_file()
    assert not (tmp_path / "curves.png").exists()  # an evaluation alone has no training log
    assert "[eval] epoch 1 step 12" in capsys.readouterr().out


def test_shipped_eval_pipeline_validates(repo_root, capsys):
    assert main(["validate", str(repo_root / "pipelines" / "eval.yaml")]) == 0
    first_lines = (repo_root / "pipelines" / "eval.yaml").read_text().splitlines()[:2]
    assert first_lines[0] == "# yaml-language-server: $schema=../schemas/pipeline.schema.json"
    assert first_lines[1].startswith("# wam-pipe run pipelines/eval.yaml stages.eval.checkpoint=")


def test_config_mistakes_are_reported_at_validation(repo_root, capsys):
    code = main(["validate", str(repo_root / "pipelines" / "eval.yaml"), "stages.eval.data.drop_last=true",
                 "stages.eval.data.random_subset=0.5", "stages.eval.data.mask_mode=union",
                 "stages.eval.augs={rotat: [10]}", "stages.eval.masks=[box,circle]", "stages.eval.max_images=0"])
    assert code == 2
    err = capsys.readouterr().err
    for expected in ("stages.eval.augs.rotat: unknown augmentation", "stages.eval.masks: unknown mask 'circle'",
                     "stages.eval.data.drop_last: must be false", "stages.eval.data.random_subset: must be 0",
                     "stages.eval.multi_wm_sources: 'segm' needs separate instance masks",
                     "stages.eval.max_images: must be >= 1, got 0"):
        assert expected in err, err


def test_missing_checkpoint_is_a_user_error(tmp_path):
    """Evaluation alone: the runner asks the stage for its checkpoint before rebuilding the model from it."""
    stage = Eval(data=None)
    with pytest.raises(UserError, match="not set and .*last.pt does not exist"):
        stage.checkpoint_path(RunContext(run_dir=tmp_path))
    stage = Eval(data=None, checkpoint=str(tmp_path / "nope.pt"))
    with pytest.raises(UserError, match="no such checkpoint"):
        stage.checkpoint_path(RunContext(run_dir=tmp_path))


def test_setup_caps_the_loader_once(tmp_path):
    class Loader:
        max_samples, batch_size, calls = 500, 16, 0

        def setup(self, ctx):
            self.calls += 1

    loader = Loader()
    stage = Eval(data=loader, max_images=100, batch_size=8, augs={"identity": None})
    stage.setup(RunContext(run_dir=tmp_path))
    stage.setup(RunContext(run_dir=tmp_path))
    assert (loader.max_samples, loader.batch_size, loader.calls) == (100, 8, 1)


@pytest.mark.parametrize("per_rank, cap", [(False, 100), (True, 400)])
def test_max_images_per_rank_reads_the_cap_per_rank_like_the_reference(tmp_path, per_rank, cap):
    """`max_images_per_rank: true` is the reference's `nb_images_eval` (per rank): 4 ranks x 100 = 400 images."""
    class Loader:
        max_samples, batch_size = None, 16

        def setup(self, ctx):
            pass

    loader = Loader()
    stage = Eval(data=loader, max_images=100, max_images_per_rank=per_rank, augs={"identity": None})
    stage.setup(RunContext(run_dir=tmp_path, rank=1, world_size=4))
    assert loader.max_samples == cap


def test_aug_args_mistakes_are_reported_at_validation(repo_root, capsys):
    pipeline = str(repo_root / "pipelines" / "eval.yaml")
    assert main(["validate", pipeline, "stages.eval.aug_args={crop_resize_pad: {eval_setting: reference}}"]) == 0
    assert main(["validate", pipeline, "stages.eval.aug_args={crop_resize_pad: {eval_setting: paper}}"]) == 2
    assert "stages.eval.aug_args.crop_resize_pad.eval_setting: unknown setting 'paper'" in capsys.readouterr().err
