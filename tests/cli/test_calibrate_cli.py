"""`wam-pipe calibrate`: the table behind `detect --min-fraction` (cases, statistics, detection rates, bad input)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from wam_pipe.cli import main
from wam_pipe.inference.calibrate import CASES
from wam_pipe.inference.detect import DEFAULT_MIN_FRACTION
from wam_pipe.models import ConvEmbedder, ConvExtractor, Watermarker
from wam_pipe.core.checkpoint import save_checkpoint


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    torch.manual_seed(0)
    step = {"_target_": "wam_pipe.stages.Step",
            "embedder": {"_target_": "wam_pipe.models.ConvEmbedder", "nbits": 6, "channels": 4, "depth": 1},
            "extractor": {"_target_": "wam_pipe.models.ConvExtractor", "nbits": 6, "channels": 4, "depth": 0},
            "img_size": 32}
    model = Watermarker(ConvEmbedder(nbits=6, channels=4, depth=1), ConvExtractor(nbits=6, channels=4, depth=0),
                        img_size=32)
    config = yaml.safe_dump({"version": 1, "name": "t", "stages": {"step": step}})
    save_checkpoint(tmp_path / "c.pt", {"model": model.state_dict(), "config": config})
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (48 + 8 * i, 64, 3), dtype=np.uint8)).save(photos / f"{i}.jpg")
    (photos / "notes.txt").write_text("not a photo")
    return {"ckpt": tmp_path / "c.pt", "photos": photos, "dir": tmp_path}


def test_table_and_json(setup, capsys):
    out = setup["dir"] / "cal.json"
    assert main(["calibrate", "--checkpoint", str(setup["ckpt"]), "--images", str(setup["photos"]), "--limit", "2",
                 "--threshold", "0", "--threshold", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("2 photos;") and all(case in text for case in CASES)
    result = json.loads(out.read_text())
    assert result["photos"] == ["0.jpg", "1.jpg"] and len(result["rows"]) == 2
    for case in CASES:
        stats = result["summary"][case]
        assert stats["detected"] == {"0.0": 1.0, "1.0": pytest.approx(np.mean([r[case]["region"] >= 1
                                                                                 for r in result["rows"]]))}
        assert ("bit_acc" in stats) == (not case.startswith("clean"))  # only marked photos have a message
        for key in ("fraction", "region", "bit_conf"):
            quantiles = list(stats[key].values())
            assert quantiles == sorted(quantiles) and 0 <= quantiles[0] and quantiles[-1] <= 1
        for row in result["rows"]:
            assert row[case]["region"] <= row[case]["fraction"] + 0.02  # one region is part of all the pixels


def test_the_default_threshold_is_the_detect_default(setup, capsys):
    assert main(["calibrate", "--checkpoint", str(setup["ckpt"]), "--images", str(setup["photos"]), "--limit",
                 "1"]) == 0
    rates = [line for line in capsys.readouterr().out.splitlines() if " detected: " in line]
    assert len(rates) == len(CASES) and all(line.endswith(f"at {DEFAULT_MIN_FRACTION}") for line in rates)


def test_bad_input_is_one_line(setup, capsys):
    assert main(["calibrate", "--checkpoint", str(setup["ckpt"]), "--images", str(setup["dir"] / "none")]) == 2
    assert capsys.readouterr().err.strip().endswith("no such folder; give a folder of clean photos")
    assert main(["calibrate", "--checkpoint", str(setup["dir"] / "c.txt"), "--images", str(setup["photos"])]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert main(["calibrate", "--checkpoint", str(setup["ckpt"]), "--images", str(setup["photos"]),
                 "--device", "cudafoo"]) == 2
    assert capsys.readouterr().err.strip() == "run.device: unknown device 'cudafoo'; use auto, cpu, cuda or cuda:N"
