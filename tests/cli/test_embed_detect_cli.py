"""`wam-pipe embed` / `detect` through the real CLI: outputs, bad input (exit 2, one line), and a round trip on real
COCO photos with a model trained for about a minute by the real `wam-pipe run` (slow)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wam_pipe.cli import main
from wam_pipe.inference.detect import DEFAULT_MIN_FRACTION



@pytest.fixture
def files(tmp_path: Path, untrained_checkpoint) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.jpg"
    Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(photo, quality=95)
    box = np.zeros((90, 120), np.uint8)
    box[10:50, 20:80] = 255
    Image.fromarray(box).save(tmp_path / "mask.png")
    Image.fromarray(box[:80]).save(tmp_path / "small_mask.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all")
    return {"ckpt": untrained_checkpoint(tmp_path / "c.pt"), "photo": photo, "mask": tmp_path / "mask.png",
            "small_mask": tmp_path / "small_mask.png", "broken": tmp_path / "broken.jpg", "dir": tmp_path}


def test_embed_then_detect_outputs(files, capsys):
    out = files["dir"] / "marked.png"
    assert main(["embed", "--checkpoint", str(files["ckpt"]), "--image", str(files["photo"]), "--message", "1011 0010",
                 "--mask", str(files["mask"]), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "message: 10110010" in text and "psnr:" in text
    marked, photo = np.asarray(Image.open(out)), np.asarray(Image.open(files["photo"]))
    assert marked.shape == photo.shape  # full resolution out
    outside = np.asarray(Image.open(files["mask"])) == 0
    assert np.array_equal(marked[outside], photo[outside])  # nothing changes outside the mask
    assert main(["detect", "--checkpoint", str(files["ckpt"]), "--image", str(out), "--json",
                 "--mask-out", str(files["dir"] / "pred.png")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"present", "fraction", "message", "bit_confidence", "nbits"}
    assert len(report["message"]) == 8 and set(report["message"]) <= {"0", "1"}
    assert len(report["bit_confidence"]) == 8 and all(0.5 <= c <= 1 for c in report["bit_confidence"])
    assert Image.open(files["dir"] / "pred.png").size == (120, 90)


def test_random_message_is_seeded_and_json(files, capsys):
    args = ["embed", "--checkpoint", str(files["ckpt"]), "--image", str(files["photo"]), "--random", "--seed", "3",
            "--out", str(files["dir"] / "r.png"), "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["message"] == first["message"]
    assert first["size"] == [120, 90] and len(first["message"]) == 8


def test_detect_multi_writes_a_label_map(files, capsys):
    assert main(["detect", "--checkpoint", str(files["ckpt"]), "--image", str(files["photo"]), "--multi", "--json",
                 "--mask-out", str(files["dir"] / "labels.png")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert isinstance(report["regions"], list)
    with Image.open(files["dir"] / "labels.png") as labels:
        assert labels.mode == "P" and labels.size == (120, 90)
        assert int(np.asarray(labels).max()) <= len(report["regions"])


@pytest.mark.parametrize("case, expected", [
    ("broken", "cannot read this image"),
    ("missing", "no such image file"),
    ("short", "6 bits given but this checkpoint was trained with 8 bits"),
    ("letters", "contains '2', 'a'"),
    ("mask_size", "mask is 120x80 but the image is 120x90"),
    ("no_ckpt", "no such checkpoint"),
    ("garbage_ckpt", "garbage.pt: not a readable wam-pipe checkpoint (UnpicklingError); this is not a PyTorch"),
    ("truncated_ckpt", "cut.pt: not a readable wam-pipe checkpoint"),
])
def test_bad_input_is_one_line_exit_2(files, capsys, case, expected):
    args = {"ckpt": str(files["ckpt"]), "image": str(files["photo"]), "message": "10110010", "mask": None}
    if case == "broken":
        args["image"] = str(files["broken"])
    elif case == "missing":
        args["image"] = str(files["dir"] / "nope.png")
    elif case == "short":
        args["message"] = "101100"
    elif case == "letters":
        args["message"] = "1011001a2"
    elif case == "mask_size":
        args["mask"] = str(files["small_mask"])
    elif case == "no_ckpt":
        args["ckpt"] = str(files["dir"] / "none.pt")
    elif case == "garbage_ckpt":
        args["ckpt"] = str(files["dir"] / "garbage.pt")
        Path(args["ckpt"]).write_bytes(b"garbage\n")
    elif case == "truncated_ckpt":
        args["ckpt"] = str(files["dir"] / "cut.pt")
        Path(args["ckpt"]).write_bytes(files["ckpt"].read_bytes()[:2000])
    argv = ["embed", "--checkpoint", args["ckpt"], "--image", args["image"], "--message", args["message"],
            "--out", str(files["dir"] / "o.png")] + (["--mask", args["mask"]] if args["mask"] else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err
    assert "weights_only" not in err  # never torch's advice to load a file unsafely
    if case == "truncated_ckpt":  # the exception type depends on where the cut falls; the diagnosis does not
        assert "the archive is truncated or damaged" in err
    assert not (files["dir"] / "o.png").exists()


def test_detect_on_a_truncated_checkpoint_is_one_line(files):
    cut = files["dir"] / "cut.pt"
    cut.write_bytes(files["ckpt"].read_bytes()[:-100])
    result = subprocess.run([sys.executable, "-m", "wam_pipe", "detect", "--checkpoint", str(cut),
                             "--image", str(files["photo"])], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(rf"{re.escape(str(cut))}: not a readable wam-pipe checkpoint \(\w+\); the "
                                            r"archive is truncated or damaged \(an interrupted save or copy\?\); use "
                                            "another checkpoint", lines[0]), lines


def test_detect_reports_the_presence_rule(files, capsys):
    argv = ["detect", "--checkpoint", str(files["ckpt"]), "--image", str(files["photo"]), "--json"]
    report = detect_json(capsys, *argv[1:-1])
    assert report["min_fraction"] == DEFAULT_MIN_FRACTION and report["region"] <= report["fraction"]
    assert report["present"] == (report["region"] >= DEFAULT_MIN_FRACTION)
    lowered = detect_json(capsys, *argv[1:-1], "--min-fraction", "0")
    assert lowered["present"] and lowered["min_fraction"] == 0
    assert main(["detect", *argv[1:-1], "--min-fraction", "1.5"]) == 2
    assert "--min-fraction: 1.5 is not in [0, 1]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["detect", "--help"])
    assert f"(default {DEFAULT_MIN_FRACTION})" in " ".join(capsys.readouterr().out.split())


def test_detect_bad_image_has_no_traceback(files):
    result = subprocess.run([sys.executable, "-m", "wam_pipe", "detect", "--checkpoint", str(files["ckpt"]),
                             "--image", str(files["broken"])], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "cannot read this image" in result.stderr


# --- round trip with a briefly trained model (slow) ------------------------------------------------------------

TRAIN = """\
version: 1
name: tiny-roundtrip
run: {{device: cpu, epochs: 60, log_every: 100, seed: 0, tensorboard: false, eval_every: 0, checkpoint_every: 1000}}
stages:
  shard-build:
    _target_: wam_pipe.stages.ShardBuild
    images: {coco}/train2017
    annotations: {coco}/annotations/instances_train2017.json
    out: {shards}
    size: 256
    samples_per_shard: 10
    workers: 1
  load: {{_target_: wam_pipe.stages.Load, shards: {shards}, size: 256, batch_size: 16, workers: 0}}
  augment:
    _target_: wam_pipe.stages.Augment
    masks: {{_target_: wam_pipe.augment.MaskSampler, full: 0.4, box: 0.6, irregular: 0.0, segm: 0.0, invert_proba: 0.3}}
  step:
    _target_: wam_pipe.stages.Step
    # Images of 256 px, models at 64 px: training goes through the same resize-embed-upsample path as full-size
    # inference, so the watermark survives it.
    embedder: {{_target_: wam_pipe.models.ConvEmbedder, nbits: 8, channels: 32, depth: 3}}
    extractor: {{_target_: wam_pipe.models.ConvExtractor, nbits: 8, channels: 32, depth: 3, img_size: 64}}
    optimizer: {{_target_: torch.optim.AdamW, _partial_: true, lr: 0.003}}
    losses: {{_target_: wam_pipe.losses.WatermarkLosses, balanced: false, decoding: 4.0}}
    img_size: 64
    scaling_w: 2.0
"""


@pytest.fixture(scope="module")
def trained(coco_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train the tiny model once for this module (about a minute on one core)."""
    root = tmp_path_factory.mktemp("roundtrip")
    pipeline = root / "train.yaml"
    pipeline.write_text(TRAIN.format(coco=coco_tiny, shards=root / "shards"))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["run", str(pipeline), "--output-dir", str(root / "run")]) == 0
    finally:
        torch.set_num_threads(before)
    return root / "run" / "checkpoints" / "last.pt"


def box_mask(path: Path, size: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.zeros(size[::-1], np.uint8)
    left, top, right, bottom = box
    mask[top:bottom, left:right] = 255
    Image.fromarray(mask).save(path)
    return mask > 0


def detect_json(capsys, *args: str) -> dict:
    assert main(["detect", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_round_trip_on_real_photos(trained: Path, coco_tiny: Path, tmp_path: Path, capsys):
    photos = sorted((coco_tiny / "val2017").glob("*.jpg"))[:8]
    accuracies, ious = [], []
    for i, photo in enumerate(photos):
        with Image.open(photo) as image:
            size = image.size
        truth = box_mask(tmp_path / f"m{i}.png", size, (size[0] // 10, size[1] // 8, size[0] // 2, size[1] * 5 // 8))
        message = "".join(np.random.default_rng(i).choice(["0", "1"], 8))
        out = tmp_path / f"marked{i}.png"
        assert main(["embed", "--checkpoint", str(trained), "--image", str(photo), "--message", message,
                     "--mask", str(tmp_path / f"m{i}.png"), "--out", str(out)]) == 0
        capsys.readouterr()
        found = detect_json(capsys, "--checkpoint", str(trained), "--image", str(out),
                            "--mask-out", str(tmp_path / f"p{i}.png"))
        predicted = np.asarray(Image.open(tmp_path / f"p{i}.png")) > 127
        assert predicted.shape == truth.shape
        assert found["present"], (photo.name, found["region"])  # the box covers 20% of the photo
        accuracies.append(np.mean([a == b for a, b in zip(found["message"], message)]))
        ious.append((predicted & truth).sum() / (predicted | truth).sum())
        clean = detect_json(capsys, "--checkpoint", str(trained), "--image", str(photo))
        assert not clean["present"], (photo.name, clean["region"], clean["fraction"])  # never watermarked
    assert np.mean(accuracies) >= 0.8, accuracies  # chance is 0.5
    assert np.mean(ious) >= 0.4, ious


@pytest.mark.slow
def test_two_messages_in_one_photo(trained: Path, coco_tiny: Path, tmp_path: Path, capsys):
    photo = sorted((coco_tiny / "val2017").glob("*.jpg"))[0]
    with Image.open(photo) as image:
        w, h = image.size
    messages = ["10110010", "01001101"]
    boxes = [(w // 20, h // 10, w * 9 // 20, h // 2), (w // 2, h // 2, w * 19 // 20, h * 9 // 10)]
    current = photo
    for i, (message, box) in enumerate(zip(messages, boxes)):
        box_mask(tmp_path / f"m{i}.png", (w, h), box)
        out = tmp_path / f"step{i}.png"
        assert main(["embed", "--checkpoint", str(trained), "--image", str(current), "--message", message,
                     "--mask", str(tmp_path / f"m{i}.png"), "--out", str(out)]) == 0
        current = out
    capsys.readouterr()
    found = detect_json(capsys, "--checkpoint", str(trained), "--image", str(current), "--multi")
    decoded = [r["message"] for r in found["regions"]]
    assert len(decoded) >= 2, found
    for message in messages:  # each message is found in some region, at most two of its 8 bits off
        assert max(sum(a == b for a, b in zip(message, d)) for d in decoded) >= 6, (message, decoded)
