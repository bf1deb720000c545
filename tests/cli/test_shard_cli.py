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
    assert not (tmp_path / "o").exists()  # the output folder is created only once the JSON has been read
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
    code = main(["shard", "build", "--images", str(images), "--annotations", str(tmp_path / "a.json"), "--out",
                 str(tmp_path / "o"), "--workers", "1", "--size", "64"])  # the published build is over the default
    err = capsys.readouterr().err
    assert code == 1 and "the published build in" in err and "skipped 1 of 16 images (6.2% >" in err
    assert (tmp_path / "o" / "manifest.json").is_file()


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


@pytest.mark.parametrize(
    "change, message",
    [(lambda d: d.update(annotations=5), "annotations: expected a list, got int 5"),
     (lambda d: d["annotations"][0].update(iscrowd="yes"), "annotations[0].iscrowd: expected 0 or 1, got str 'yes'"),
     (lambda d: d["annotations"][2].update(category_id=[1]), "annotations[2].category_id: expected an int, got list"),
     (lambda d: d["categories"][1].update(id="2"), "categories[1].id: expected an int, got str '2'")],
)
def test_wrongly_structured_json_exits_2_with_one_line(coco, tmp_path, capsys, change, message):
    images, annotations = coco
    data = json.loads(annotations.read_text())
    change(data)
    (tmp_path / "a.json").write_text(json.dumps(data))
    code = main(["shard", "build", "--images", str(images), "--annotations", str(tmp_path / "a.json"), "--out",
                 str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"{tmp_path / 'a.json'}: {message}")
    assert err[0].endswith("; fix the annotation file") and not (tmp_path / "o").exists()


def test_fixed_images_are_refused_until_overwrite_and_a_deleted_shard_is_rebuilt(coco, tmp_path, capsys):
    import shutil

    images = tmp_path / "images"
    shutil.copytree(coco[0], images)
    hidden = tmp_path / "hidden.jpg"
    (images / "000000000003.jpg").rename(hidden)
    out = tmp_path / "shards"
    assert _build((images, coco[1]), out, "--max-skipped-fraction", "0.1") == 0
    hidden.rename(images / "000000000003.jpg")
    capsys.readouterr()
    assert _build((images, coco[1]), out, "--max-skipped-fraction", "0.1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds shards built from other images" in err[0] and "--overwrite" in err[0]
    assert _build((images, coco[1]), out, "--overwrite") == 0
    assert "built 4 shards (16 images" in capsys.readouterr().out
    (out / "shard-000002.tar").unlink()
    assert _build((images, coco[1]), out) == 0
    printed = capsys.readouterr().out
    assert "1 published shards missing or damaged (shard-000002.tar); rebuilding them" in printed
    assert "built 1 shards (4 images" in printed and "reused 3" in printed
    assert main(["shard", "verify", str(out)]) == 0


def test_skip_summary_groups_by_kind(coco, tmp_path, capsys):
    from PIL import Image

    images, annotations = coco
    data = json.loads(annotations.read_text())
    folder = tmp_path / "images"  # the fixture's images (linked) plus a bomb
    folder.mkdir()
    for image in images.iterdir():
        (folder / image.name).symlink_to(image)
    Image.new("1", (10000, 10000)).save(folder / "bomb.png")
    data["images"][0].update(file_name="bomb.png", width=10000, height=10000)
    (tmp_path / "a.json").write_text(json.dumps(data))
    code = main(["shard", "build", "--images", str(folder), "--annotations", str(tmp_path / "a.json"), "--out",
                 str(tmp_path / "o"), "--workers", "1", "--size", "64", "--max-skipped-fraction", "0.1"])
    assert code == 0 and "skipped 1 images: 1 x decompression bomb (listed" in capsys.readouterr().out
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["skipped"][0]["kind"] == "bomb"


def test_output_and_picture_mistakes_exit_2_without_writing(coco, tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    assert _build(coco, tmp_path / "a_file") == 2
    assert capsys.readouterr().err.strip() == f"{tmp_path / 'a_file'}: exists and is not a folder; pass a folder for " \
                                              "the shards (--out)"
    out = tmp_path / "shards"
    assert _build(coco, out) == 0
    (tmp_path / "pictures").mkdir()
    for extra, fragment in [(["--out", str(tmp_path / "grid.xyz")], "cannot write a picture of type '.xyz'"),
                            (["--out", str(tmp_path / "pictures")], "is a folder; pass a file name"),
                            (["--out", str(tmp_path / "g.png"), "--samples", "0"], "--samples must be >= 1, got 0")]:
        capsys.readouterr()
        assert main(["shard", "inspect", str(out), *extra]) == 2
        captured = capsys.readouterr()
        assert fragment in captured.err and "Traceback" not in captured.err and captured.out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "pictures", "shards"]
    assert list((tmp_path / "pictures").iterdir()) == []
