"""Every shipped pipeline validates, survives the run-dir round trip, and the recipes run a step at reduced size."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from wam_pipe.cli import main
from wam_pipe.config import build_stages, compose

PIPELINES = sorted((Path(__file__).resolve().parents[1] / "pipelines").glob("*.yaml"))


def test_the_shipped_pipelines_are_there():
    names = {p.name for p in PIPELINES}
    assert {"quickstart.yaml", "train.yaml", "finetune.yaml", "eval.yaml"} <= names


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_shipped_pipeline_validates_and_builds(path):
    pipeline = compose(path)
    stages = build_stages(pipeline.resolved, pipeline.file)
    assert stages


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_header_points_editors_to_the_schema(path):
    first, second = path.read_text().splitlines()[:2]
    assert first == "# yaml-language-server: $schema=../schemas/pipeline.schema.json"
    assert second.startswith("# ")


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_saved_config_round_trips(path, tmp_path):
    """What a run dir stores as config.yaml composes to the same resolved pipeline."""
    pipeline = compose(path, ["run.seed=7"])
    saved = tmp_path / "config.yaml"
    saved.write_text(pipeline.to_yaml())
    again = compose(saved)
    assert again.resolved == pipeline.resolved
    assert yaml.safe_load(pipeline.to_yaml(resolved=True)) == pipeline.resolved


def _reduced(tiny_shards: Path, size: int = 32) -> list[str]:
    """Overrides that run a recipe's real components on tiny data: 1 step, 2 images per batch, 32-64 px."""
    return [
        "~stages.shard-build", f"stages.load.shards={tiny_shards}", f"vars.img_size={size}",
        "stages.load.batch_size=2", "stages.load.workers=0", "run.epochs=1", "run.steps_per_epoch=1",
        "run.log_every=1", "run.tensorboard=false",
        "stages.step.extractor.depth=2",                 # sam_base's width, 2 blocks: same code, CPU-sized
        f"stages.eval.data.shards={tiny_shards}", "stages.eval.data.workers=0", "stages.eval.max_images=2",
        "stages.eval.masks=[full,segm]", "stages.eval.augs={identity: null, jpeg: [50]}", "stages.eval.pictures=0",
    ]


@pytest.mark.slow
def test_train_and_finetune_recipes_run_a_step_at_reduced_size(tiny_shards, tmp_path):
    pretrain = tmp_path / "pretrain"
    assert main(["run", "pipelines/train.yaml", "--output-dir", str(pretrain), *_reduced(tiny_shards)]) == 0
    checkpoint = pretrain / "checkpoints" / "last.pt"
    assert checkpoint.is_file()
    # fine-tuning starts from those weights (adding JND and multiple watermarks)
    finetune = tmp_path / "finetune"
    overrides = _reduced(tiny_shards) + [f"stages.step.init_from={checkpoint}"]
    assert main(["run", "pipelines/finetune.yaml", "--output-dir", str(finetune), *overrides]) == 0
    assert (finetune / "checkpoints" / "last.pt").is_file()


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_shipped_pipeline_matches_the_json_schema(path, repo_root):
    """The editor schema accepts every shipped pipeline (so it is never stricter than the validator)."""
    import json

    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((repo_root / "schemas" / "pipeline.schema.json").read_text())
    jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_json_schema_flags_typos(repo_root):
    import json

    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((repo_root / "schemas" / "pipeline.schema.json").read_text())
    bad = {"version": 1, "name": "x", "stages": {"load": {"_target_": "wam_pipe.stages.Load", "batch_sise": 4}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    # typos inside nested components (the whole list of the audit: tests/config/test_schema.py)
    for stage, component, key, value in [("step", "embedder", "chanels", 3), ("step", "optimizer", "lrr", 1),
                                         ("step", "extractor", "_target_", "wam_pipe.models.ConvExtractr"),
                                         ("step", "losses", "detection", "fast"), ("eval", "data", "batch_sise", 3)]:
        nested = yaml.safe_load((repo_root / "pipelines" / "quickstart.yaml").read_text())
        nested["stages"][stage][component][key] = value
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(nested, schema)



def _reduced_released(tiny_shards: Path) -> list[str]:
    """finetune-released.yaml at reduced size: vae_small + sam_tiny (full depth: 4 tokens at 32 px), 8 bits, 2 steps."""
    reduced = [o for o in _reduced(tiny_shards) if not o.startswith("stages.step.extractor.depth")]
    return reduced + ["vars.nbits=8", "stages.step.extractor._target_=wam_pipe.models.sam_tiny",
                      "run.steps_per_epoch=2", "vars.watermarks=2"]


@pytest.mark.slow
def test_finetune_released_and_eval_take_imported_and_reference_checkpoints(tiny_shards, tmp_path, reference_weights,
                                                                            capsys):
    import json

    import torch

    from wam_pipe.models.reference_layout import ReferenceParams

    params = ReferenceParams("vae_small", "sam_tiny", nbits=8, img_size=32)  # jnd_1_3_blue, scaling_w 2.0
    reference = reference_weights.write_reference_file(tmp_path / "wam.pth", params)
    (tmp_path / "params.json").write_text(json.dumps(params.to_json()))  # beside it, as the reference keeps it
    imported = tmp_path / "wam.pt"
    assert main(["import-wam", str(reference), "--params", str(tmp_path / "params.json"), "--out", str(imported)]) == 0

    finetuned = tmp_path / "ft"
    assert main(["run", "pipelines/finetune-released.yaml", "--output-dir", str(finetuned),
                 *_reduced_released(tiny_shards), f"stages.step.init_from={imported}"]) == 0
    start = torch.load(imported, weights_only=True)["model"]
    tuned = torch.load(finetuned / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert start.keys() <= tuned.keys()
    moved = (tuned["embedder.decoder.conv_out.weight"] - start["embedder.decoder.conv_out.weight"]).abs().max()
    assert 0 < moved < 0.05  # started from the imported weights, then a few small AdamW steps
    capsys.readouterr()

    # the reference file itself works as init_from (converted onto the pipeline's model; one line says so)
    assert main(["run", "pipelines/finetune-released.yaml", "--output-dir", str(tmp_path / "ft2"),
                 *_reduced_released(tiny_shards), f"stages.step.init_from={reference}"]) == 0
    assert "wam.pth: a Watermark Anything reference checkpoint" in capsys.readouterr().err

    # an imported model into a pipeline with another extractor: one line naming the file and the key/shape
    code = main(["run", "pipelines/finetune-released.yaml", "--output-dir", str(tmp_path / "ft3"),
                 *_reduced_released(tiny_shards), f"stages.step.init_from={imported}",
                 "stages.step.extractor._target_=wam_pipe.models.sam_small"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "wam.pt" in err[0] and "has shape" in err[0], err

    # pipelines/eval.yaml evaluates the imported file and the reference file alike
    for checkpoint in (imported, reference):
        out = tmp_path / f"eval-{checkpoint.suffix[1:]}"
        assert main(["run", "pipelines/eval.yaml", "--output-dir", str(out), f"stages.eval.checkpoint={checkpoint}",
                     f"vars.shards={tiny_shards}", "vars.size=32", "stages.eval.data.workers=0",
                     "stages.eval.max_images=2", "stages.eval.masks=[full]", "stages.eval.augs={identity: null}",
                     "stages.eval.pictures=0", "stages.eval.multi_wm=false", "run.tensorboard=false"]) == 0
    metrics = [json.loads((tmp_path / f"eval-{s}" / "eval" / "metrics.json").read_text()) for s in ("pt", "pth")]
    assert metrics[0]["images"] == metrics[1]["images"] == 2
