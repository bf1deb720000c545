"""`wam-pipe detect --images`: a folder / glob scanned in batches through a DataLoader, one JSON line per image,
bad files listed with their reason, never stopping the scan."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import wam_pipe
from wam_pipe.cli import main
from wam_pipe.core.errors import UserError
from wam_pipe.inference.scan import list_images



@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for i, (h, w) in enumerate([(40, 60), (64, 48), (33, 33), (80, 50), (50, 50)]):
        image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        image.save(root / f"img{i}.{'png' if i % 2 else 'jpg'}", quality=95)
    Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(root / "sub" / "deep.png")
    (root / "broken.jpg").write_bytes(b"not a jpeg at all")
    (root / "empty.png").write_bytes(b"")
    good = root / "img1.png"
    (root / "truncated.png").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (root / "notes.txt").write_text("not an image: not listed")
    return root


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("workers", [0, 2])
def test_scan_lists_every_image_and_every_bad_file(folder, tmp_path, capsys, workers, untrained_checkpoint):
    ckpt = untrained_checkpoint(tmp_path / "c.pt")
    out = tmp_path / "results.jsonl"
    assert main(["detect", "--checkpoint", str(ckpt), "--images", str(folder), "--out", str(out), "--batch-size", "3",
                 "--workers", str(workers), "--device", "cpu"]) == 0
    lines = read_lines(out)
    names = [Path(line["path"]).name for line in lines]
    assert names == ["broken.jpg", "empty.png", "img0.jpg", "img1.png", "img2.jpg", "img3.png", "img4.jpg",
                     "truncated.png"]
    errors = {Path(line["path"]).name: line["error"] for line in lines if "error" in line}
    assert set(errors) == {"broken.jpg", "empty.png", "truncated.png"}
    assert all("cannot read this image" in reason for reason in errors.values())
    model = wam_pipe.load(ckpt, device="cpu")
    for line in lines:
        if "error" in line:
            continue
        assert set(line) == {"path", "detected", "confidence", "region", "fraction", "message", "bit_confidence"}
        found = model.detect(Image.open(line["path"]))  # the API's single-image answer
        assert line["message"] == found.message_bits and line["detected"] == found.present
        assert line["bit_confidence"] == pytest.approx([float(c) for c in found.bit_confidence], abs=1e-3)
    summary = capsys.readouterr().out
    assert "8 images:" in summary and "3 unreadable" in summary and str(out) in summary
    assert not list(tmp_path.glob(".results.jsonl.tmp"))


def test_recursive_and_glob(folder, tmp_path):
    assert "sub/deep.png" in [p.relative_to(folder).as_posix() for p in list_images(folder, recursive=True)]
    assert "deep.png" not in [p.name for p in list_images(folder)]
    assert [p.name for p in list_images(f"{folder}/img*.png")] == ["img1.png", "img3.png"]
    names = {p.name for p in list_images(f"{folder}/**/*.png", recursive=True)}
    assert names == {"empty.png", "img1.png", "img3.png", "deep.png", "truncated.png"}


def test_bad_arguments_are_one_line_errors(folder, tmp_path, capsys, untrained_checkpoint):
    ckpt = untrained_checkpoint(tmp_path / "c.pt")
    cases = [
        (["--images", str(folder)], "--images needs --out"),
        (["--images", str(tmp_path / "missing"), "--out", str(tmp_path / "r.jsonl")], "no such folder"),
        (["--images", f"{tmp_path}/*.webp", "--out", str(tmp_path / "r.jsonl")], "matches no file"),
        (["--images", str(folder), "--out", str(tmp_path / "no" / "r.jsonl")], "does not exist"),
        (["--images", str(folder), "--out", str(tmp_path / "r.jsonl"), "--batch-size", "0"], "--batch-size"),
        (["--image", str(folder / "img0.jpg"), "--out", str(tmp_path / "r.jsonl")], "--out goes with --images"),
    ]
    for extra, expected in cases:
        assert main(["detect", "--checkpoint", str(ckpt), "--device", "cpu", *extra]) == 2
        err = capsys.readouterr().err
        assert expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    with pytest.raises(UserError, match="--recursive"):
        list_images(_empty_with_sub(tmp_path))


def _empty_with_sub(tmp_path: Path) -> Path:
    root = tmp_path / "nested"
    (root / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "a" / "x.png")
    return root
