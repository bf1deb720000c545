"""`wam-pipe import-wam` / `export-wam` and reference checkpoints used directly, through the real CLI, on
deterministic weights in the reference layout (a reduced configuration: vae_small + sam_tiny, 8 bits, 32 px; the
released configuration itself is covered by the parity test and benchmarks/RESULTS.md)."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from wam_pipe.cli import main
from wam_pipe.models import ConvEmbedder, ConvExtractor, Watermarker
from wam_pipe.models.reference_layout import RELEASED, ReferenceParams, expected_layout
from wam_pipe.core.checkpoint import save_checkpoint

SMALL = ReferenceParams("vae_small", "sam_tiny", nbits=8, img_size=32, attenuation="jnd_1_3_blue", scaling_w=2.0,
                        scaling_i=1.0)
# What the reference's own loader can run (it always works at 256 px): for the export round trip, which runs no model.
EXPORTABLE = dataclasses.replace(SMALL, img_size=256)


def write_params(path: Path, params: ReferenceParams, **changes) -> Path:
    path.write_text(json.dumps({**params.to_json(), **changes}))
    return path


@pytest.fixture
def ref(tmp_path, reference_weights) -> dict[str, Path]:
    """A reference checkpoint of the SMALL configuration, its params.json, and a photo."""
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(tmp_path / "p.png")
    return {"pth": reference_weights.write_reference_file(tmp_path / "wam.pth", SMALL),
            "params": write_params(tmp_path / "small.json", SMALL), "photo": tmp_path / "p.png", "dir": tmp_path}


def _one_error_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.slow  # builds and loads two models through three CLI calls: ~20 s on a loaded 2-core machine
def test_import_export_import_is_bit_identical(tmp_path, reference_weights, capsys):
    d = tmp_path
    pth = reference_weights.write_reference_file(d / "wam.pth", EXPORTABLE)
    params = write_params(d / "exportable.json", EXPORTABLE)
    assert main(["import-wam", str(pth), "--params", str(params), "--out", str(d / "a.pt")]) == 0
    assert "vae_small + sam_tiny, nbits 8, img_size 256" in capsys.readouterr().out
    assert main(["export-wam", str(d / "a.pt"), "--out", str(d / "x.pth"), "--params-out", str(d / "x.json")]) == 0
    original, exported = torch.load(pth, weights_only=True), torch.load(d / "x.pth", weights_only=True)
    assert list(exported) == list(original)
    assert all(torch.equal(original[k], exported[k]) and original[k].dtype == exported[k].dtype for k in original)
    assert json.loads((d / "x.json").read_text()) == EXPORTABLE.to_json()
    assert main(["import-wam", str(d / "x.pth"), "--params", str(d / "x.json"), "--out", str(d / "b.pt")]) == 0
    a, b = torch.load(d / "a.pt", weights_only=True), torch.load(d / "b.pt", weights_only=True)
    assert a["config"] == b["config"] and list(a["model"]) == list(b["model"])
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    # the written checkpoint is weights + config only
    assert {"optimizer", "scheduler", "rng"}.isdisjoint(a)
    assert yaml.safe_load(a["config"])["stages"]["step"]["extractor"]["_target_"] == "wam_pipe.models.sam_tiny"


def test_a_dict_holding_the_state_dict_under_model_imports(ref, tmp_path):
    torch.save({"model": torch.load(ref["pth"], weights_only=True), "epoch": 3}, tmp_path / "resume.pth")
    assert main(["import-wam", str(tmp_path / "resume.pth"), "--params", str(ref["params"]),
                 "--out", str(tmp_path / "r.pt")]) == 0


@pytest.mark.slow  # four embed/detect CLI calls: ~15 s on a loaded 2-core machine
def test_embed_and_detect_take_the_imported_file_and_the_reference_file_directly(ref, capsys):
    d = ref["dir"]
    assert main(["import-wam", str(ref["pth"]), "--params", str(ref["params"]), "--out", str(d / "a.pt")]) == 0
    capsys.readouterr()
    reports = {}
    for name, ckpt in (("imported", d / "a.pt"), ("reference", ref["pth"])):
        if name == "reference":
            write_params(d / "params.json", SMALL)  # beside the .pth, as the reference repository keeps it
        out = d / f"marked_{name}.png"
        assert main(["embed", "--checkpoint", str(ckpt), "--image", str(ref["photo"]), "--message", "10110010",
                     "--out", str(out), "--device", "cpu"]) == 0
        assert main(["detect", "--checkpoint", str(ckpt), "--image", str(out), "--json", "--device", "cpu"]) == 0
        captured = capsys.readouterr()
        reports[name] = {k: v for k, v in json.loads(captured.out.strip().splitlines()[-1]).items() if k != "image"}
        recognised = [line for line in captured.err.splitlines() if "reference checkpoint" in line]
        assert len(recognised) == (2 if name == "reference" else 0), captured.err
        if name == "reference":
            assert "params.json" in recognised[0]
    assert reports["imported"] == reports["reference"]  # the same model either way
    marked = [np.asarray(Image.open(d / f"marked_{n}.png")) for n in ("imported", "reference")]
    assert np.array_equal(*marked)


def test_released_layout_is_the_default(tmp_path, capsys):
    """Without --params the file is checked against the released configuration: a SMALL file (same keys as the
    released one, other shapes) is refused with its first mismatching key and shape, and the message points at
    --params."""
    state = {k: torch.zeros(s) for k, s in expected_layout(SMALL)[1].items()}
    torch.save(state, tmp_path / "small.pth")
    assert main(["import-wam", str(tmp_path / "small.pth"), "--out", str(tmp_path / "o.pt")]) == 2
    _one_error_line(capsys, "small.pth", "embedder.msg_processor.msg_embeddings.weight has shape (16, 16)", "(64, 64)",
                    "--params")
    assert not (tmp_path / "o.pt").exists()
    assert RELEASED.describe() == "vae_small + sam_base, nbits 32, img_size 256, attenuation jnd_1_3_blue"


# ---- bad input: one line naming the file and the first mismatching key/shape, exit 2 ----------------------------

def test_truncated_file(ref, capsys):
    data = ref["pth"].read_bytes()
    (ref["dir"] / "cut.pth").write_bytes(data[: len(data) // 2])
    assert main(["import-wam", str(ref["dir"] / "cut.pth"), "--params", str(ref["params"]),
                 "--out", str(ref["dir"] / "o.pt")]) == 2
    _one_error_line(capsys, "cut.pth", "truncated")


def test_foreign_state_dict_names_its_first_unexpected_and_missing_keys(tmp_path, capsys):
    torch.save({"features.0.weight": torch.zeros(3), "classifier.weight": torch.zeros(2)}, tmp_path / "resnet.pth")
    assert main(["import-wam", str(tmp_path / "resnet.pth"), "--out", str(tmp_path / "o.pt")]) == 2
    _one_error_line(capsys, "resnet.pth", "unexpected keys features.0.weight", "missing keys embedder.encoder.conv_in")


class _Marker:
    """Unpickling this would create a file; safe loading must refuse it without running it."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_pickle_that_is_not_a_state_dict_is_never_executed(tmp_path, capsys):
    marker = tmp_path / "executed"
    torch.save({"embedder.x": _Marker(str(marker))}, tmp_path / "evil.pth")  # what a hostile .pth looks like
    assert main(["import-wam", str(tmp_path / "evil.pth"), "--out", str(tmp_path / "o.pt")]) == 2
    _one_error_line(capsys, "evil.pth", "safe loading refuses")
    with open(tmp_path / "raw.pth", "wb") as f:  # a bare pickle, not torch.save's archive
        pickle.dump({"embedder.x": _Marker(str(marker))}, f)
    assert main(["import-wam", str(tmp_path / "raw.pth"), "--out", str(tmp_path / "o.pt")]) == 2
    _one_error_line(capsys, "raw.pth")
    assert not marker.exists()
    torch.save([1, 2, 3], tmp_path / "list.pth")  # loadable, but not a state_dict
    assert main(["import-wam", str(tmp_path / "list.pth"), "--out", str(tmp_path / "o.pt")]) == 2
    _one_error_line(capsys, "list.pth", "not a state_dict")


def test_mismatched_nbits_in_params(ref, capsys):
    bad = write_params(ref["dir"] / "bad.json", SMALL, nbits=16)
    assert main(["import-wam", str(ref["pth"]), "--params", str(bad), "--out", str(ref["dir"] / "o.pt")]) == 2
    _one_error_line(capsys, "wam.pth", "embedder.msg_processor.msg_embeddings.weight", "(16, 16)", "nbits 16")


def test_bad_params_value(ref, capsys):
    bad = write_params(ref["dir"] / "bad.json", SMALL, extractor_model="resnet50")
    assert main(["import-wam", str(ref["pth"]), "--params", str(bad), "--out", str(ref["dir"] / "o.pt")]) == 2
    _one_error_line(capsys, "bad.json", "extractor_model='resnet50'")


def test_export_refuses_the_cpu_conv_models(tmp_path, capsys):
    step = {"embedder": {"_target_": "wam_pipe.models.ConvEmbedder", "nbits": 8, "channels": 4, "depth": 1},
            "extractor": {"_target_": "wam_pipe.models.ConvExtractor", "nbits": 8, "channels": 4, "depth": 0},
            "img_size": 32}
    model = Watermarker(ConvEmbedder(nbits=8, channels=4, depth=1), ConvExtractor(nbits=8, channels=4, depth=0),
                        img_size=32)
    config = yaml.safe_dump({"version": 1, "name": "tiny", "stages": {"step": step}})
    save_checkpoint(tmp_path / "conv.pt", {"model": model.state_dict(), "config": config, "epoch": 1, "step": 1})
    assert main(["export-wam", str(tmp_path / "conv.pt"), "--out", str(tmp_path / "x.pth")]) == 2
    _one_error_line(capsys, "conv.pt", "cannot export", "ConvEmbedder")
    assert not (tmp_path / "x.pth").exists()


def test_export_refuses_a_processing_size_the_reference_cannot_run(ref, capsys):
    """SMALL runs at 32 px; the reference's loader always runs at 256."""
    d = ref["dir"]
    assert main(["import-wam", str(ref["pth"]), "--params", str(ref["params"]), "--out", str(d / "a.pt")]) == 0
    capsys.readouterr()
    assert main(["export-wam", str(d / "a.pt"), "--out", str(d / "x.pth")]) == 2
    _one_error_line(capsys, "a.pt", "img_size 32", "256")
    assert not (d / "x.pth").exists()
