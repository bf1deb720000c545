"""`wam-pipe export --format safetensors` and loading the export: same model, and no pickle on the way in."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import wam_pipe
from wam_pipe.cli import main
from wam_pipe.core.errors import UserError
from wam_pipe.inference.export import CONFIG_NAME, WEIGHTS_NAME



@pytest.fixture
def exported(tmp_path: Path, capsys, untrained_checkpoint) -> tuple[Path, Path]:
    ckpt = untrained_checkpoint(tmp_path / "c.pt")
    out = tmp_path / "shared" / "tiny"
    assert main(["export", str(ckpt), "--format", "safetensors", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    return ckpt, out


def test_export_writes_safetensors_and_config(exported):
    ckpt, out = exported
    assert sorted(p.name for p in out.iterdir()) == [WEIGHTS_NAME, CONFIG_NAME]
    config = json.loads((out / CONFIG_NAME).read_text())
    assert config["format"] == "wam-pipe/safetensors" and config["nbits"] == 8 and config["img_size"] == 32
    assert config["model"]["_target_"] == "wam_pipe.models.Watermarker"
    assert config["source"] == {"checkpoint": "c.pt", "epoch": 1, "step": 3}
    assert (out / WEIGHTS_NAME).read_bytes()[8:9] == b"{"  # safetensors: 8-byte header length, then JSON


def test_loading_the_export_never_unpickles(exported, monkeypatch):
    ckpt, out = exported
    reference = wam_pipe.load(ckpt, device="cpu")
    image = torch.randint(0, 256, (3, 40, 60), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    expected = (reference.embed(image, "10110010").image, reference.detect(image).logits)

    def refuse(*args, **kwargs):
        raise AssertionError("pickle / torch.load used while loading an export")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    for path in (out, out / WEIGHTS_NAME, out / CONFIG_NAME):
        model = wam_pipe.load(path, device="cpu")
        assert (model.nbits, model.img_size) == (8, 32)
        assert torch.equal(model.embed(image, "10110010").image, expected[0])
        assert torch.equal(model.detect(image).logits, expected[1])


def test_cli_uses_the_export(exported, tmp_path, capsys):
    _, out = exported
    path = tmp_path / "p.png"
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(path)
    assert main(["embed", "--checkpoint", str(out), "--image", str(path), "--message", "10110010", "--out",
                 str(tmp_path / "m.png"), "--device", "cpu"]) == 0
    assert "message: 10110010" in capsys.readouterr().out


def test_bad_exports_are_one_line_errors(exported, tmp_path, capsys):
    _, out = exported
    good = (out / CONFIG_NAME).read_text()
    config = json.loads(good)
    config["model"]["embedder"]["_target_"] = "os.system"
    (out / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(UserError, match="not allowed"):
        wam_pipe.load(out, device="cpu")
    (out / CONFIG_NAME).write_text("{not json")
    with pytest.raises(UserError, match="not readable JSON"):
        wam_pipe.load(out, device="cpu")
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / WEIGHTS_NAME).write_bytes(b"garbage")
    assert main(["detect", "--checkpoint", str(broken / WEIGHTS_NAME), "--image", str(image)]) == 2
    assert "wam_pipe.json: missing" in capsys.readouterr().err
    (broken / CONFIG_NAME).write_text(good)
    assert main(["detect", "--checkpoint", str(broken), "--image", str(image)]) == 2
    assert "not a readable safetensors file" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "o")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


def test_a_reference_checkpoint_exports_directly(tmp_path, reference_weights, capsys):
    """`wam-pipe export wam.pth`: a reference-layout file is converted on load (no import-wam step first), and the
    export computes what the file does."""
    from wam_pipe.models.reference_layout import ReferenceParams

    params = ReferenceParams("vae_small", "sam_tiny", nbits=8, img_size=32, attenuation=None)
    pth = reference_weights.write_reference_file(tmp_path / "wam.pth", params)
    (tmp_path / "params.json").write_text(json.dumps(params.to_json()))
    out = tmp_path / "exported"
    assert main(["export", str(pth), "--format", "safetensors", "--out", str(out)]) == 0
    assert "reference checkpoint" in capsys.readouterr().err
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    direct, shared = wam_pipe.load(pth, device="cpu"), wam_pipe.load(out, device="cpu")
    assert torch.equal(direct.detect(image).logits, shared.detect(image).logits)
    assert json.loads((out / CONFIG_NAME).read_text())["source"] == {"checkpoint": "wam.pth", "epoch": None,
                                                                    "step": None}
