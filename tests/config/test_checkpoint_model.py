"""Rebuilding a model from a checkpoint: the embedded config is untrusted and validated before anything is built."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from wam_pipe.core.errors import ConfigError, UserError
from wam_pipe.config.checkpoint_model import load_watermarker, model_node
from wam_pipe.models import ConvEmbedder, ConvExtractor, Watermarker
from wam_pipe.core.checkpoint import load_checkpoint, save_checkpoint


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


@pytest.mark.parametrize("content, reason", [
    (b"garbage\n", "(UnpicklingError); this is not a PyTorch checkpoint file"),
    (b"", "(EOFError); the file is empty"),
    ("truncated", "the archive is truncated or damaged"),
    ("half", "the archive is truncated or damaged"),
])
def test_unreadable_files_are_one_line_without_torch_advice(tmp_path, content, reason):
    path = tmp_path / "bad.pt"
    if isinstance(content, str):  # a real checkpoint cut short, as by an interrupted copy
        whole = write(tmp_path / "c.pt", step_config()).read_bytes()
        content = whole[:4000] if content == "truncated" else whole[:len(whole) // 2]
    path.write_bytes(content)
    for load in (load_watermarker, load_checkpoint):  # embed/detect/eval, and init_from/resume
        with pytest.raises(UserError) as err:
            load(path)
        message = str(err.value)
        assert message.startswith(f"{path}: not a readable wam-pipe checkpoint (") and reason in message
        assert "\n" not in message and "weights_only" not in message and "torch.load" not in message


def test_a_pickle_of_foreign_objects_is_named_not_run(tmp_path):
    torch.save({"model": {}, "args": Path("/somewhere")}, tmp_path / "foreign.pt")
    with pytest.raises(UserError, match=r"stores Python objects \(pathlib\.\w*Path\) that safe loading refuses") as err:
        load_checkpoint(tmp_path / "foreign.pt")
    assert "weights_only" not in str(err.value)


def test_a_pickled_call_to_os_system_is_named_as_code_and_never_runs(tmp_path):
    # Issue 11 item 11: reported as "archive is truncated or damaged" before.
    import os

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    torch.save({"model": {}, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match=r"evil.pt: .*it holds code \(posix.system\) that loading would run; safe "
                                        r"loading refused it, nothing ran"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


@pytest.mark.parametrize("model, message", [
    ([1, 2], "the checkpoint's 'model' is a list, not a mapping"),
    ({"w": torch.tensor([1.0, float("nan")])}, "weight w holds NaN or infinite values"),
])
def test_checkpoint_weights_are_checked_before_anything_is_built(tmp_path, model, message):
    # Issue 11 item 9: a list gave AttributeError; NaN weights gave a result, then a ValueError traceback.
    torch.save({"model": model, "config": ""}, tmp_path / "c.pt")
    with pytest.raises(UserError, match=message):
        load_checkpoint(tmp_path / "c.pt")
    with pytest.raises(UserError, match=message):  # embed / detect / calibrate / eval / export read it this way
        load_watermarker(tmp_path / "c.pt")


@pytest.mark.parametrize("where", ["img_size", "nbits"])
def test_checkpoint_sizes_out_of_bounds_are_refused_before_building(tmp_path, where):
    # Issue 11 item 9: `img_size: 100000` tried to allocate 120 GB.
    step = step_config(img_size=100000) if where == "img_size" else step_config(nbits=10**7)
    path = write(tmp_path / "c.pt", step)
    with pytest.raises(UserError, match=rf"c.pt: the checkpoint's stages.step.*{where} is \d+, outside"):
        load_watermarker(path)
