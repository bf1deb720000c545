from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wam_pipe.data.build import KILL_HOOK_ENV, build_shards
from wam_pipe.data.build_state import BuildConfig
from wam_pipe.data.manifest import read_manifest
from wam_pipe.data.tar_io import read_samples
from wam_pipe.errors import RunFailure, UserError


def _config(coco: tuple[Path, Path], out: Path, **kw) -> BuildConfig:
    images, annotations = coco
    settings = {"size": 64, "samples_per_shard": 5, "workers": 1, "progress": False, **kw}
    return BuildConfig(images, annotations, out, **settings)


def _shard_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("shard-*.tar"))}


def test_manifest_records_settings_source_shards_and_totals(synth_coco, tmp_path):
    result = build_shards(_config(synth_coco, tmp_path / "out"))
    manifest = read_manifest(tmp_path / "out")
    assert result.manifest == manifest and not result.noop
    assert manifest["settings"] == {"format_version": 1, "size": 64, "samples_per_shard": 5, "image_format": "jpeg",
                                    "quality": 95, "jpeg_subsampling": "4:2:0"}
    assert manifest["source"]["image_count"] == 36 and len(manifest["source"]["annotations_sha256"]) == 64
    assert [s["name"] for s in manifest["shards"]] == [f"shard-{i:06d}.tar" for i in range(8)]
    assert [s["samples"] for s in manifest["shards"]] == [5] * 7 + [1]
    assert manifest["totals"]["samples"] == 36 and manifest["totals"]["images_without_annotations"] == 2
    assert sum(c["instances"] for c in manifest["categories"]) == manifest["totals"]["instances"] > 36
    assert manifest["skipped"] == [] and manifest["part"] is None
    for shard in manifest["shards"]:
        assert (tmp_path / "out" / shard["name"]).stat().st_size == shard["bytes"]
    assert not (tmp_path / "out" / "_build").exists()  # build state is removed once published


def test_keys_are_zero_padded_ids_in_id_order(synth_shards):
    keys = [s.key for shard in sorted(synth_shards.glob("shard-*.tar")) for s in read_samples(shard)]
    assert keys == [f"{i:012d}" for i in range(1, 37)]


def test_shards_are_byte_identical_whatever_the_worker_count(synth_coco, tmp_path):
    one = build_shards(_config(synth_coco, tmp_path / "one", workers=1))
    two = build_shards(_config(synth_coco, tmp_path / "two", workers=2))
    assert _shard_bytes(tmp_path / "one") == _shard_bytes(tmp_path / "two")
    assert one.manifest == two.manifest


def test_rerun_is_a_noop_and_other_settings_are_refused(synth_coco, tmp_path):
    out = tmp_path / "out"
    build_shards(_config(synth_coco, out))
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = build_shards(_config(synth_coco, out, workers=2))  # workers do not change the output
    assert again.noop and again.seconds < 2.0
    assert stamps == {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(UserError, match=r"samples_per_shard: 5 -> 6.*--overwrite"):
        build_shards(_config(synth_coco, out, samples_per_shard=6))
    rebuilt = build_shards(_config(synth_coco, out, samples_per_shard=6, overwrite=True))
    assert not rebuilt.noop and len(list(out.glob("shard-*.tar"))) == 6


def test_shard_files_of_an_unknown_build_are_refused(synth_coco, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "shard-000000.tar").write_bytes(b"x")
    with pytest.raises(UserError, match="unknown build"):
        build_shards(_config(synth_coco, out))


def test_bad_inputs_are_skipped_reported_and_counted(bad_inputs, tmp_path):
    root, ids = bad_inputs
    config = BuildConfig(root / "images", root / "annotations.json", tmp_path / "out", size=64, workers=1,
                         max_skipped_fraction=0.5, progress=False)
    manifest = build_shards(config).manifest
    skipped = {entry["image_id"]: entry["reason"] for entry in manifest["skipped"]}
    expected_skips = {"corrupt", "truncated", "missing", "bomb", "size_mismatch", "bad_rle"}
    assert set(skipped) == {ids[name] for name in expected_skips}
    assert manifest["totals"]["samples"] == len(ids) - len(expected_skips)
    assert manifest["totals"]["images_without_annotations"] == 1
    assert manifest["unknown_image_annotations"] == {"count": 1, "image_ids": [9999]}
    assert manifest["files_not_in_json"] == 1
    kept = [s.key for s in read_samples(tmp_path / "out" / "shard-000000.tar")]
    assert kept == sorted(f"{ids[n]:012d}" for n in ids if n not in expected_skips)


def test_too_many_skipped_images_fail_and_publish_nothing(bad_inputs, tmp_path):
    root, _ = bad_inputs
    out = tmp_path / "out"
    config = BuildConfig(root / "images", root / "annotations.json", out, size=64, workers=1, progress=False)
    with pytest.raises(RunFailure, match=r"skipped 6 of 13 images .*nothing was published"):
        build_shards(config)
    assert list(out.iterdir()) == []  # no manifest, no shards, no build state


def _run_build(coco: tuple[Path, Path], out: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    images, annotations = coco
    command = [sys.executable, "-m", "wam_pipe", "shard", "build", "--images", str(images), "--annotations",
               str(annotations), "--out", str(out), "--size", "64", "--samples-per-shard", "5", "--workers", "2"]
    return subprocess.run(command, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=120)


def test_killed_build_resumes_to_identical_shards(synth_coco, tmp_path):
    reference = tmp_path / "reference"
    assert _run_build(synth_coco, reference).returncode == 0
    out = tmp_path / "killed"
    killed = _run_build(synth_coco, out, {KILL_HOOK_ENV: "3"})  # SIGKILL while writing the 4th shard
    assert killed.returncode == -9
    assert len(list(out.glob("shard-*.tar"))) == 3 and len(list(out.glob("*.tmp"))) == 1
    assert not (out / "manifest.json").exists()
    resumed = _run_build(synth_coco, out)
    assert resumed.returncode == 0, resumed.stderr
    assert "reused 3" in resumed.stdout
    assert _shard_bytes(out) == _shard_bytes(reference)
    assert json.loads((out / "manifest.json").read_text()) == json.loads((reference / "manifest.json").read_text())
    assert not list(out.glob("*.tmp")) and not (out / "_build").exists()


def test_parts_merge_into_the_whole_build(synth_coco, tmp_path):
    from wam_pipe.data.merge import merge_parts

    whole = build_shards(_config(synth_coco, tmp_path / "whole")).manifest
    for part in range(3):
        build_shards(_config(synth_coco, tmp_path / f"part{part}", num_parts=3, part=part))
    parts = [tmp_path / f"part{p}" for p in range(3)]
    assert {s["name"] for s in read_manifest(parts[1] / "manifest.part-0001-of-0003.json")["shards"]} == {
        "shard-000001.tar", "shard-000004.tar", "shard-000007.tar"}
    with pytest.raises(UserError, match=r"missing \[2\]"):
        merge_parts(parts[:2], tmp_path / "merged")
    _, merged = merge_parts(parts, tmp_path / "merged")
    assert {k: v for k, v in merged.items() if k != "encoder"} == {k: v for k, v in whole.items() if k != "encoder"}
    assert _shard_bytes(tmp_path / "merged") == _shard_bytes(tmp_path / "whole")


@pytest.mark.slow
def test_build_killed_from_outside_at_any_moment_resumes_identically(tmp_path):
    """A real `kill -9` from another process, at whatever point the build has reached."""
    import signal
    import time

    from wam_pipe.data.synth import write_synthetic_coco

    coco = (tmp_path / "coco" / "images", tmp_path / "coco" / "ann.json")
    write_synthetic_coco(*coco, 160, seed=8, workers=2)
    reference = tmp_path / "reference"
    assert _run_build(coco, reference).returncode == 0
    out = tmp_path / "killed"
    images, annotations = coco
    command = [sys.executable, "-m", "wam_pipe", "shard", "build", "--images", str(images), "--annotations",
               str(annotations), "--out", str(out), "--size", "64", "--samples-per-shard", "5", "--workers", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list(out.glob("shard-*.tar"))) < 4 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    if process.returncode != -signal.SIGKILL:
        pytest.skip("the build finished before it could be killed")
    assert not (out / "manifest.json").exists()
    resumed = _run_build(coco, out)
    assert resumed.returncode == 0, resumed.stderr
    assert _shard_bytes(out) == _shard_bytes(reference)
    assert (out / "manifest.json").read_bytes() == (reference / "manifest.json").read_bytes()
