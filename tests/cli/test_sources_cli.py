"""`shard build --sa1b` / `--images` alone and `data synth --format sa1b` through the real CLI: output, exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from wam_pipe.cli import main
from wam_pipe.data.shards.tar_io import read_samples
from wam_pipe.data.synth import write_synthetic_coco


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A folder of photos without annotations: 6 JPEGs at the top, 3 in a subfolder, a PNG, a text file."""
    root = tmp_path_factory.mktemp("photos")
    write_synthetic_coco(root / "coco", root / "ann.json", 9, seed=5, min_size=48, max_size=96, workers=1)
    folder = root / "photos"
    (folder / "holiday").mkdir(parents=True)
    for i, path in enumerate(sorted((root / "coco").glob("*.jpg"))):
        shutil.copy(path, folder / ("holiday" if i >= 6 else ".") / f"img{i}.jpg")
    from PIL import Image

    Image.new("RGBA", (40, 30), (10, 200, 30, 128)).save(folder / "logo.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_synth_sa1b_then_build_verify_inspect(tmp_path, capsys):
    assert main(["data", "synth", "--format", "sa1b", "--out", str(tmp_path / "tars"), "--images", "7",
                 "--per-tar", "4", "--width", "80", "--height", "60", "--masks", "3"]) == 0
    assert "in 2 SA-1B-style tars" in capsys.readouterr().out
    out = tmp_path / "shards"
    args = ["shard", "build", "--sa1b", str(tmp_path / "tars" / "*.tar"), "--out", str(out), "--size", "32",
            "--samples-per-shard", "2", "--workers", "1", "--max-masks", "2", "--mask-order", "stability"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "built 4 shards (7 images" in printed and "7 samples" in printed and "14 instances" in printed
    assert main(args) == 0 and "up to date" in capsys.readouterr().out
    assert main(["shard", "verify", str(out)]) == 0
    assert main(["shard", "inspect", str(out), "--out", str(tmp_path / "grid.png"), "--samples", "4"]) == 0
    assert "source: SA-1B: 2 tars (7 images)" in capsys.readouterr().out


def test_bad_sa1b_input_exits_2_with_one_line(tmp_path, capsys):
    (tmp_path / "bad.tar").write_bytes(b"x" * 100)
    assert main(["shard", "build", "--sa1b", str(tmp_path / "bad.tar"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.tar: not a readable tar file" in err
    assert main(["shard", "build", "--sa1b", str(tmp_path / "bad.tar"), "--images", str(tmp_path),
                 "--out", str(tmp_path / "out")]) == 2
    assert "not both" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_folder_without_annotations_packs_every_image_without_instances(photos, tmp_path, capsys):
    out = tmp_path / "shards"
    assert main(["shard", "build", "--images", str(photos), "--out", str(out), "--size", "32",
                 "--samples-per-shard", "4", "--workers", "1"]) == 0
    assert "10 samples" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "images" and manifest["source"]["instances"] is False
    assert manifest["totals"]["instances"] == 0 and manifest["totals"]["images_without_annotations"] == 10
    samples = [s for shard in sorted(out.glob("shard-*.tar")) for s in read_samples(shard)]
    assert main(["shard", "inspect", str(out)]) == 0
    assert "image folder without annotations, no instances (10 images)" in capsys.readouterr().out
    names = [json.loads(s.meta)["file_name"] for s in samples]
    assert names == sorted(names) and "holiday/img6.jpg" in names and "logo.png" in names
    assert all(json.loads(s.meta)["annotations"] == [] for s in samples)
    assert main(["shard", "build", "--images", str(photos), "--out", str(out), "--size", "32",
                 "--samples-per-shard", "4", "--workers", "1"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_folder_without_readable_images_exits_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "broken.jpg").write_bytes(b"nope")
    assert main(["shard", "build", "--images", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no readable images (none of its 1 image files can be read" in err
    assert not (tmp_path / "out").exists()
