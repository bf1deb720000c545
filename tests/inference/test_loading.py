"""Rebuilding a model from a checkpoint: the embedded config is untrusted and validated before anything is built."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from wam_pipe.errors import ConfigError, UserError
from wam_pipe.inference.loading import load_watermarker, model_node
from wam_pipe.models import ConvEmbedder, ConvExtractor, Watermarker
from wam_pipe.runner.checkpoint import save_checkpoint


def step_config(nbits: int = 6, **extra) -> dict:
    return {"_target_": "wam_pipe.stages.Step",
            "embedder": {"_target_": "wam_pipe.models.ConvEmbedder", "nbits": nbits, "channels": 4, "depth": 1},
            "extractor": {"_target_": "wam_pipe.models.ConvExtractor", "nbits": nbits, "channels": 4, "depth": 0},
            "optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 0.001},
            "img_size": 32, "scaling_w": 0.5, **extra}


def write(path: Path, step: dict, nbits: int = 6, allow: list[str] | None = None, model=None) -> Path:
    torch.manual_seed(0)
    model = model or Watermarker(ConvEmbedder(nbits=nbits, channels=4, depth=1),
                                 ConvExtractor(nbits=nbits, channels=4, depth=0), scaling_w=0.5, img_size=32)
    config = {"version": 1, "name": "t", "stages": {"step": step}}
    if allow:
        config["allow_targets"] = allow
    save_checkpoint(path, {"model": model.state_dict(), "config": yaml.safe_dump(config), "epoch": 4, "step": 40})
    return path


def test_rebuilds_the_model_with_its_weights(tmp_path):
    path = write(tmp_path / "c.pt", step_config())
    loaded = load_watermarker(path)
    assert (loaded.nbits, loaded.img_size, loaded.epoch, loaded.step) == (6, 32, 4, 40)
    assert loaded.model.scaling_w == 0.5 and not loaded.model.training
    torch.manual_seed(0)
    reference = Watermarker(ConvEmbedder(nbits=6, channels=4, depth=1), ConvExtractor(nbits=6, channels=4, depth=0),
                            scaling_w=0.5, img_size=32)
    for (name, a), (_, b) in zip(loaded.model.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(a, b), name


def test_a_disallowed_target_is_never_imported(tmp_path):
    evil = step_config()
    evil["embedder"] = {"_target_": "os.system", "command": "touch " + str(tmp_path / "pwned")}
    path = write(tmp_path / "c.pt", evil, allow=["os.*"])  # the checkpoint's own allow_targets is ignored
    with pytest.raises(ConfigError, match=r"stages\.step\.embedder\._target_: 'os\.system' is not allowed") as err:
        load_watermarker(path)
    assert "--allow-target" in str(err.value)
    assert not (tmp_path / "pwned").exists()


def test_caller_trusted_patterns_allow_custom_targets(tmp_path):
    custom = step_config()
    custom["jnd"] = {"_target_": "collections.OrderedDict"}  # importable, but outside the default allowlist
    path = write(tmp_path / "c.pt", custom)
    with pytest.raises(ConfigError, match="not allowed"):
        load_watermarker(path)
    loaded = load_watermarker(path, allow_targets=["collections.*"])  # trusted now, so it is built
    assert type(loaded.model.jnd).__name__ == "OrderedDict"


def test_interpolations_and_missing_configs_are_refused(tmp_path):
    with pytest.raises(UserError, match="interpolations"):
        model_node(yaml.safe_dump({"stages": {"step": step_config(img_size="${oc.env:HOME}")}}), "c.pt")
    with pytest.raises(UserError, match="no pipeline config"):
        model_node(None, "c.pt")
    with pytest.raises(UserError, match="no stages.step"):
        model_node(yaml.safe_dump({"stages": {"eval": {}}}), "c.pt")


def test_weights_of_another_shape_name_the_module(tmp_path):
    other = Watermarker(ConvEmbedder(nbits=6, channels=8, depth=1), ConvExtractor(nbits=6, channels=4, depth=0),
                        img_size=32)
    path = write(tmp_path / "c.pt", step_config(), model=other)
    with pytest.raises(UserError, match=r"does not fit this model: module embedder\."):
        load_watermarker(path)


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"\x00junk")
    with pytest.raises(UserError, match="not a readable wam-pipe checkpoint"):
        load_watermarker(tmp_path / "junk.pt")
