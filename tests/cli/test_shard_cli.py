"""`wam-pipe shard build|verify|inspect|merge` through the real CLI entry point: output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from wam_pipe.cli import main
from wam_pipe.data.synth import write_synthetic_coco


@pytest.fixture(scope="module")
def coco(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("shard_cli")
    write_synthetic_coco(root / "images", root / "ann.json", 16, seed=4, min_size=64, max_size=128, workers=1)
    return root / "images", root / "ann.json"


def _build(coco, out: Path, *extra: str) -> int:
    images, annotations = coco
    return main(["shard", "build", "--images", str(images), "--annotations", str(annotations), "--out", str(out),
                 "--size", "64", "--samples-per-shard", "4", "--workers", "1", *extra])


def test_build_verify_inspect(coco, tmp_path, capsys):
    out = tmp_path / "shards"
    assert _build(coco, out) == 0
    printed = capsys.readouterr().out
    assert "built 4 shards (16 images" in printed and "4 shards, 16 samples" in printed
    assert _build(coco, out) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["shard", "verify", str(out)]) == 0
    assert "OK: 4 shards, 16 samples verified" in capsys.readouterr().out
    assert main(["shard", "inspect", str(out), "--out", str(tmp_path / "grid.png"), "--samples", "4"]) == 0
    printed = capsys.readouterr().out
    assert "4 shards, 16 samples of 64x64 jpeg q95" in printed and "wrote" in printed
    assert (tmp_path / "grid.png").stat().st_size > 1000


def test_verify_names_the_bad_shard_and_key_and_exits_1(coco, tmp_path, capsys):
    out = tmp_path / "shards"
    assert _build(coco, out) == 0
    path = out / "shard-000001.tar"
    data = bytearray(path.read_bytes())
    data[700:800] = bytes(100)
    path.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["shard", "verify", str(out)]) == 1
    errors = capsys.readouterr().err
    assert "shard-000001.tar: 000000000005: image does not decode" in errors and "Traceback" not in errors


def test_user_errors_exit_2_with_one_line(coco, tmp_path, capsys):
    images, _ = coco
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [')
    assert main(["shard", "build", "--images", str(images), "--annotations", str(broken), "--out",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(broken) in err[0] and "not valid JSON" in err[0]
    out = tmp_path / "shards"
    assert _build(coco, out) == 0
    capsys.readouterr()
    assert _build(coco, out, "--quality", "80") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["shard", "verify", str(tmp_path / "nowhere")]) == 2


def test_too_many_skipped_images_exit_1(coco, tmp_path, capsys):
    images, annotations = coco
    data = json.loads(annotations.read_text())
    data["images"][0]["file_name"] = "missing.jpg"
    (tmp_path / "a.json").write_text(json.dumps(data))
    code = main(["shard", "build", "--images", str(images), "--annotations", str(tmp_path / "a.json"), "--out",
                 str(tmp_path / "o"), "--workers", "1", "--size", "64"])
    assert code == 1
    assert "skipped 1 of 16 images" in capsys.readouterr().err
    assert not (tmp_path / "o" / "manifest.json").exists()
    code = main(["shard", "build", "--images", str(images), "--annotations", str(tmp_path / "a.json"), "--out",
                 str(tmp_path / "o"), "--workers", "1", "--size", "64", "--max-skipped-fraction", "0.1"])
    assert code == 0 and "skipped 1 images: 1 x file missing" in capsys.readouterr().out


def test_parts_and_merge(coco, tmp_path, capsys):
    out = tmp_path / "shards"
    for part in range(2):
        assert _build(coco, out, "--num-parts", "2", "--part", str(part)) == 0
    assert main(["shard", "merge", str(out), "--out", str(out)]) == 0
    assert "4 shards, 16 samples" in capsys.readouterr().out
    assert main(["shard", "verify", str(out)]) == 0


def test_help_is_fast_and_lists_the_commands():
    result = subprocess.run([sys.executable, "-m", "wam_pipe", "shard", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and all(word in result.stdout for word in ("build", "verify", "inspect", "merge"))
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, wam_pipe.cli.shard_cmd, wam_pipe.cli.data_cmd; "
                               "print(sorted(m for m in ('torch', 'PIL', 'webdataset') if m in sys.modules))"],
        capture_output=True, text=True, timeout=60)
    assert imported.stdout.strip() == "[]"  # heavy modules are imported inside the handlers only
