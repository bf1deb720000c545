"""`wam-pipe data synth` through the real CLI entry point."""

from __future__ import annotations

import json

from PIL import Image

from wam_pipe.cli import main


def test_synth_writes_a_coco_dataset_and_is_a_noop_the_second_time(tmp_path, capsys):
    args = ["data", "synth", "--out", str(tmp_path / "syn"), "--images", "12", "--seed", "3", "--min-size", "64",
            "--max-size", "96", "--workers", "1"]
    assert main(args) == 0
    assert "wrote 12 images" in capsys.readouterr().out
    data = json.loads((tmp_path / "syn" / "annotations.json").read_text())
    assert len(data["images"]) == 12 and data["info"]["seed"] == 3
    assert {c["name"] for c in data["categories"]} == {"ellipse", "polygon", "rectangle", "blob-crowd"}
    first = data["images"][0]
    with Image.open(tmp_path / "syn" / "images" / first["file_name"]) as image:
        assert image.format == "JPEG" and image.size == (first["width"], first["height"])
    assert main(args) == 0
    assert "already up to date" in capsys.readouterr().out


def test_synth_output_builds_into_shards(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path / "syn"), "--images", "8", "--min-size", "64",
                 "--max-size", "80", "--workers", "1"]) == 0
    assert main(["shard", "build", "--images", str(tmp_path / "syn" / "images"), "--annotations",
                 str(tmp_path / "syn" / "annotations.json"), "--out", str(tmp_path / "shards"), "--size", "64",
                 "--workers", "1"]) == 0
    assert "1 shards, 8 samples" in capsys.readouterr().out


def test_bad_count_exits_2(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path / "syn"), "--images", "0"]) == 2
    assert "images must be >= 1" in capsys.readouterr().err
