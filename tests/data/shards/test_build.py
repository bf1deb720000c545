from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wam_pipe.data.shards.build import KILL_HOOK_ENV, build_shards
from wam_pipe.data.shards.build_state import BuildConfig
from wam_pipe.data.shards.manifest import read_manifest
from wam_pipe.data.shards.tar_io import read_samples
from wam_pipe.core.errors import RunFailure, UserError


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


def _run_build(coco: tuple[Path, Path], out: Path, env: dict[str, str] | None = None, *extra: str
               ) -> subprocess.CompletedProcess:
    images, annotations = coco
    command = [sys.executable, "-m", "wam_pipe", "shard", "build", "--images", str(images), "--annotations",
               str(annotations), "--out", str(out), "--size", "64", "--samples-per-shard", "5", "--workers", "2",
               *extra]
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
    from wam_pipe.data.shards.merge import merge_parts

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


def _copy_images(coco: tuple[Path, Path], target: Path) -> tuple[Path, Path]:
    """A fresh copy of the images (new mtimes: `copyfile`, not `copy2`) next to the same annotation file."""
    import shutil

    images, annotations = coco
    shutil.copytree(images, target, copy_function=shutil.copyfile)
    return target, annotations


def test_overwrite_always_rebuilds_even_when_up_to_date(synth_coco, tmp_path):
    out = tmp_path / "out"
    first = build_shards(_config(synth_coco, out))
    before = _shard_bytes(out)
    again = build_shards(_config(synth_coco, out, overwrite=True))
    assert not again.noop and again.built_shards == 8 and again.processed_images == 36
    assert _shard_bytes(out) == before and again.manifest == first.manifest


def test_changed_images_are_refused_until_overwrite_rebuilds_them(synth_coco, tmp_path):
    coco = _copy_images(synth_coco, tmp_path / "images")
    victim = coco[0] / "000000000007.jpg"
    saved = victim.read_bytes()
    victim.unlink()
    out = tmp_path / "out"
    broken = build_shards(_config(coco, out, max_skipped_fraction=0.5)).manifest
    assert [(e["image_id"], e["kind"]) for e in broken["skipped"]] == [(7, "missing")]
    victim.write_bytes(saved)  # the missing image is back: the published build no longer matches the images
    with pytest.raises(UserError, match=r"out: holds shards built from other images: .*now 0 of 36 are missing.*"
                                        r"--overwrite"):
        build_shards(_config(coco, out, max_skipped_fraction=0.5))
    fixed = build_shards(_config(coco, out, max_skipped_fraction=0.5, overwrite=True))
    assert fixed.manifest["skipped"] == [] and fixed.manifest["totals"]["samples"] == 36
    assert fixed.manifest["source"]["images_sha256"] != broken["source"]["images_sha256"]
    assert build_shards(_config(coco, out)).noop


def test_images_in_another_folder_with_other_sizes_are_refused(synth_coco, tmp_path):
    out = tmp_path / "out"
    build_shards(_config(synth_coco, out))
    other = _copy_images(synth_coco, tmp_path / "other")
    first = sorted(other[0].iterdir())[0]
    first.write_bytes(first.read_bytes() + b"\0")  # same names, one file re-encoded to another size
    with pytest.raises(UserError, match="built from other images"):
        build_shards(_config(other, out))


def test_a_copy_of_the_images_is_the_same_source(synth_coco, tmp_path):
    """No path and no mtime in the fingerprint: a copy gives a no-op rerun and byte-identical shards and manifest."""
    out = tmp_path / "out"
    original = build_shards(_config(synth_coco, out)).manifest
    copy = _copy_images(synth_coco, tmp_path / "copy")
    assert build_shards(_config(copy, out)).noop
    from_copy = build_shards(_config(copy, tmp_path / "from_copy", workers=2))
    assert from_copy.manifest == original and _shard_bytes(tmp_path / "from_copy") == _shard_bytes(out)


def test_unlisted_files_do_not_force_a_rebuild(synth_coco, tmp_path):
    coco = _copy_images(synth_coco, tmp_path / "images")
    out = tmp_path / "out"
    built = build_shards(_config(coco, out)).manifest
    (coco[0] / "holiday.jpg").write_bytes(b"not listed")  # changes the quick folder fingerprint only
    again = build_shards(_config(coco, out))
    assert again.noop and again.manifest["files_not_in_json"] == built["files_not_in_json"] + 1
    assert again.manifest["source"]["images_sha256"] == built["source"]["images_sha256"]
    assert again.manifest["source"]["images_folder_sha256"] != built["source"]["images_folder_sha256"]
    assert read_manifest(out) == again.manifest  # refreshed on disk: what a fresh build would record
    assert build_shards(_config(coco, tmp_path / "fresh")).manifest == again.manifest


def test_manifest_without_image_fingerprints_is_still_a_noop(synth_coco, tmp_path):
    """Manifests written before `images_sha256` existed are judged by settings + annotations, as they were then."""
    from wam_pipe.data.shards.manifest import write_manifest

    out = tmp_path / "out"
    manifest = build_shards(_config(synth_coco, out)).manifest
    for key in ("images_sha256", "images_folder_sha256"):
        del manifest["source"][key]
    for entry in manifest["skipped"]:
        entry.pop("kind", None)
    write_manifest(out / "manifest.json", manifest)
    again = build_shards(_config(synth_coco, out))
    assert again.noop and again.manifest == manifest


def test_rerun_over_a_build_with_too_many_skips_exits_1(bad_inputs, tmp_path):
    root, _ = bad_inputs
    out = tmp_path / "out"
    lenient = BuildConfig(root / "images", root / "annotations.json", out, size=64, workers=1,
                          max_skipped_fraction=0.5, progress=False)
    build_shards(lenient)
    published = _shard_bytes(out)
    strict = BuildConfig(root / "images", root / "annotations.json", out, size=64, workers=1, progress=False)
    with pytest.raises(RunFailure, match=r"the published build in .*out skipped 6 of 13 images \(46\.2% > "
                                         r"max_skipped_fraction 1\.0%\): 2 x corrupt.*rebuild with --overwrite"):
        build_shards(strict)
    assert _shard_bytes(out) == published and (out / "manifest.json").is_file()  # left as it was
    assert build_shards(lenient).noop


def test_deleted_and_damaged_shards_are_rebuilt_alone(synth_coco, tmp_path):
    out = tmp_path / "out"
    build_shards(_config(synth_coco, out))
    reference, manifest_bytes = _shard_bytes(out), (out / "manifest.json").read_bytes()
    (out / "shard-000002.tar").unlink()
    damaged = out / "shard-000005.tar"
    damaged.write_bytes(damaged.read_bytes()[:1000])
    untouched = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.tar") if p.name != damaged.name}
    logged: list[str] = []
    result = build_shards(_config(synth_coco, out, workers=2), log=logged.append)
    assert not result.noop and (result.built_shards, result.reused_shards, result.processed_images) == (2, 6, 10)
    assert logged == [f"{out}: 2 published shards missing or damaged (shard-000002.tar, shard-000005.tar); "
                      "rebuilding them"]
    assert _shard_bytes(out) == reference and (out / "manifest.json").read_bytes() == manifest_bytes
    assert all(out.joinpath(name).stat().st_mtime_ns == stamp for name, stamp in untouched.items())
    assert not (out / "_build").exists() and not list(out.glob("*.tmp"))


def test_repair_rebuilds_everything_when_a_rebuilt_shard_differs(synth_coco, tmp_path):
    """Published bytes that cannot be reproduced (another Pillow, say) are not mixed with new ones."""
    from wam_pipe.data.shards.manifest import write_manifest

    out = tmp_path / "out"
    true_manifest = build_shards(_config(synth_coco, out)).manifest
    tampered = json.loads(json.dumps(true_manifest))
    tampered["shards"][1]["sha256"] = "0" * 64  # as if an older encoder had written other bytes
    write_manifest(out / "manifest.json", tampered)
    (out / "shard-000001.tar").unlink()
    logged: list[str] = []
    result = build_shards(_config(synth_coco, out), log=logged.append)
    assert result.built_shards == 8 and result.manifest == true_manifest
    assert "differ from the published bytes" in logged[-1] and "rebuilding every shard" in logged[-1]


def test_killed_build_with_changed_images_is_refused(synth_coco, tmp_path):
    coco = _copy_images(synth_coco, tmp_path / "images")
    out = tmp_path / "out"
    assert _run_build(coco, out, {KILL_HOOK_ENV: "1"}).returncode == -9
    (coco[0] / "000000000003.jpg").unlink()
    with pytest.raises(UserError, match="unfinished build with other settings, another annotation file or other "
                                        "images"):
        build_shards(_config(coco, out))


def test_killed_build_from_before_image_fingerprints_resumes(synth_coco, tmp_path):
    """A build state without `images_sha256` (written before image fingerprints) is judged by its annotation file,
    as manifests of that age are: a matching one resumes without --overwrite, another annotation file is refused."""
    out = tmp_path / "out"
    assert _run_build(synth_coco, out, {KILL_HOOK_ENV: "2"}).returncode == -9
    state_file = out / "_build" / "state.json"
    state = json.loads(state_file.read_text())
    for key in ("images_sha256", "images_folder_sha256"):
        del state["source"][key]
    state_file.write_text(json.dumps({**state, "source": {**state["source"], "annotations_sha256": "0" * 64}}))
    with pytest.raises(UserError, match="unfinished build with other settings, another annotation file"):
        build_shards(_config(synth_coco, out))
    state_file.write_text(json.dumps(state))
    resumed = build_shards(_config(synth_coco, out))
    assert (resumed.built_shards, resumed.reused_shards) == (6, 2)
    fresh = build_shards(_config(synth_coco, tmp_path / "fresh"))
    assert resumed.manifest == fresh.manifest and _shard_bytes(out) == _shard_bytes(tmp_path / "fresh")


def test_skipped_images_carry_a_kind_and_are_summarised_by_it(bad_inputs, tmp_path):
    from wam_pipe.data.shards.manifest_summary import summary_lines

    root, ids = bad_inputs
    config = BuildConfig(root / "images", root / "annotations.json", tmp_path / "out", size=64, workers=1,
                         max_skipped_fraction=0.5, progress=False)
    manifest = build_shards(config).manifest
    kinds = {entry["image_id"]: entry["kind"] for entry in manifest["skipped"]}
    assert kinds == {ids["corrupt"]: "corrupt", ids["truncated"]: "corrupt", ids["missing"]: "missing",
                     ids["bomb"]: "bomb", ids["size_mismatch"]: "size", ids["bad_rle"]: "annotation"}
    assert all(entry["reason"] for entry in manifest["skipped"])  # the full reason stays
    line = next(line for line in summary_lines(manifest, "x") if line.startswith("skipped"))
    assert line == ("skipped 6 images: 2 x corrupt or truncated image; 1 x file missing; 1 x decompression bomb; "
                    "1 x size differs from the JSON; 1 x unusable segmentation (listed in the manifest's `skipped`)")


def test_output_that_is_a_file_and_bad_json_leave_nothing(synth_coco, tmp_path):
    images, _ = synth_coco
    (tmp_path / "a_file").write_text("")
    with pytest.raises(UserError, match="a_file: exists and is not a folder"):
        build_shards(_config(synth_coco, tmp_path / "a_file"))
    with pytest.raises(UserError, match="a_file/sub: cannot create the output folder"):
        build_shards(_config(synth_coco, tmp_path / "a_file" / "sub"))
    (tmp_path / "bad.json").write_text('{"images": [], "annotations": 5}')
    with pytest.raises(UserError, match=r"bad\.json: annotations: expected a list, got int 5"):
        build_shards(_config((images, tmp_path / "bad.json"), tmp_path / "new" / "out"))
    assert not (tmp_path / "new").exists()


def test_parts_built_from_different_copies_of_the_images_merge(synth_coco, tmp_path):
    """Nodes with their own copy of the images (one holding an extra, unlisted file) build parts of one build."""
    from wam_pipe.data.shards.merge import merge_parts

    build_shards(_config(synth_coco, tmp_path / "whole"))
    copies = [_copy_images(synth_coco, tmp_path / f"node{n}") for n in range(2)]
    (copies[1][0] / "extra.jpg").write_bytes(b"unlisted")
    for part in range(3):
        build_shards(_config(copies[min(part, 1)], tmp_path / f"part{part}", num_parts=3, part=part))
    _, merged = merge_parts([tmp_path / f"part{p}" for p in range(3)], tmp_path / "merged")
    assert _shard_bytes(tmp_path / "merged") == _shard_bytes(tmp_path / "whole")
    whole = read_manifest(tmp_path / "whole")
    assert merged["source"]["images_sha256"] == whole["source"]["images_sha256"]
    assert {k: v for k, v in merged.items() if k != "encoder"} == {k: v for k, v in whole.items() if k != "encoder"}


def test_a_dead_worker_fails_the_build_naming_its_image_and_the_rerun_resumes(synth_coco, tmp_path):
    # Issue 11 item 2: a worker killed by a signal (here SIGSEGV, as pycocotools did on 1e8 coordinates) left
    # multiprocessing.Pool's parent waiting forever. The subprocess timeout keeps this test itself from hanging.
    from wam_pipe.data.shards.build import SEGV_HOOK_ENV

    victim = json.loads(synth_coco[1].read_text())["images"][17]["file_name"]
    out = tmp_path / "out"
    died = _run_build(synth_coco, out, {SEGV_HOOK_ENV: victim})
    assert died.returncode == 1, died.stderr
    lines = died.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in died.stderr
    assert "shard-build worker died" in lines[0] and "SIGSEGV" in lines[0] and victim in lines[0]
    assert not (out / "manifest.json").exists()
    resumed = _run_build(synth_coco, out)
    assert resumed.returncode == 0, resumed.stderr


def test_out_of_range_polygons_skip_their_images_with_a_reason(synth_coco, tmp_path):
    # Issue 11 item 2: these segfaulted pycocotools (exit 139) or grew to ~24 GB (NaN); now each image is skipped.
    # One subprocess build (with a timeout) for all three: a regression crashes or hangs that process, not pytest.
    images, annotations = synth_coco
    coco = json.loads(annotations.read_text())
    polygons = [[0, 0, 1e8, 0, 1e8, 1e8], [0, 0, 1e308, 0, 1e308, 1e308], [0, 0, 5, 0, float("nan"), 5]]
    targets = {}
    for polygon in polygons:
        ann = next(a for a in coco["annotations"] if a["image_id"] not in targets)
        ann["segmentation"] = [polygon]
        targets[ann["image_id"]] = ann["id"]
    bad = tmp_path / "annotations.json"
    bad.write_text(json.dumps(coco))
    result = _run_build((images, bad), tmp_path / "out", None, "--max-skipped-fraction", "0.5")
    assert result.returncode == 0, result.stderr
    skipped = json.loads((tmp_path / "out" / "manifest.json").read_text())["skipped"]
    assert sorted(s["image_id"] for s in skipped) == sorted(targets)
    for entry in skipped:
        assert entry["reason"].startswith(f"annotation {targets[entry['image_id']]}: polygon")
        assert "non-finite" in entry["reason"] or "far outside" in entry["reason"]


def test_the_skip_limit_failure_names_every_skipped_image_and_every_kind(bad_inputs, tmp_path):
    # Issue 11 item 10: the line named no image and only the top 3 kinds.
    root, _ = bad_inputs
    config = BuildConfig(root / "images", root / "annotations.json", tmp_path / "out", size=64, workers=1,
                         progress=False)
    with pytest.raises(RunFailure) as err:
        build_shards(config)
    message = str(err.value)
    for name in ("corrupt.jpg (corrupt", "missing.jpg (file missing)", "bomb.png (decompression bomb",
                 "mismatch.jpg (image is"):
        assert name in message
    assert message.count(" x ") == 5  # every kind counted: corrupt, missing, bomb, size, annotation


def test_many_skipped_images_are_listed_in_a_file(synth_coco, tmp_path):
    images, annotations = synth_coco
    partial = tmp_path / "images"
    partial.mkdir()
    names = sorted(p.name for p in images.iterdir())
    for name in names[12:]:
        (partial / name).write_bytes((images / name).read_bytes())
    out = tmp_path / "out"
    with pytest.raises(RunFailure, match=r"12 x file missing: .* and 2 more \(all listed in .*skipped.json\)"):
        build_shards(BuildConfig(partial, annotations, out, size=64, workers=1, progress=False))
    listed = json.loads((out / "skipped.json").read_text())
    assert sorted(entry["file_name"] for entry in listed) == names[:12]


def test_an_annotation_file_without_images_is_refused(tmp_path):
    # Issue 11 item 12: it exited 0 and published 0 shards.
    annotations = tmp_path / "a.json"
    annotations.write_text('{"images": [], "annotations": [], "categories": []}')
    with pytest.raises(UserError, match=r"a.json: lists no images, so there is nothing to build"):
        build_shards(BuildConfig(tmp_path, annotations, tmp_path / "out", workers=1, progress=False))
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_accepted_but_suspicious_annotations_are_warned_about_with_counts(synth_coco, tmp_path):
    # Issue 11 item 13: malformed polygons, unknown category ids and a missing `categories` list were silent.
    images, annotations = synth_coco
    coco = json.loads(annotations.read_text())
    coco["annotations"][0]["segmentation"] = [[1, 2, 3, 4, 5]]  # odd length
    coco["annotations"][1]["segmentation"] = [[1, 2, 3, 4], [1, 1, 9, 1, 9, 9]]  # < 3 points, then a good one
    coco["annotations"][2]["category_id"] = 999
    bad = tmp_path / "annotations.json"
    bad.write_text(json.dumps(coco))
    lines: list[str] = []
    build_shards(BuildConfig(images, bad, tmp_path / "out", size=64, workers=1, progress=False), log=lines.append)
    assert any("2 polygons have an odd number of coordinates or fewer than 3 points" in line for line in lines)
    assert any("1 annotations have a category_id that `categories` does not list" in line for line in lines)
    del coco["categories"]
    bad.write_text(json.dumps(coco))
    lines.clear()
    build_shards(BuildConfig(images, bad, tmp_path / "out2", size=64, workers=1, progress=False), log=lines.append)
    assert any("no `categories` list" in line for line in lines)


def test_drop_unannotated_leaves_out_images_without_annotations_like_the_reference(synth_coco, tmp_path, capsys):
    """`shard build --drop-unannotated` through the real CLI: the 2 unannotated images of 36 are not packed, the
    setting is recorded (a build without it is another build), and it needs a COCO source."""
    from wam_pipe.cli import main

    images, annotations = synth_coco
    out = tmp_path / "out"
    args = ["shard", "build", "--images", str(images), "--annotations", str(annotations), "--size", "64",
            "--samples-per-shard", "5", "--workers", "1", "--no-progress", "--out", str(out)]
    assert main([*args, "--drop-unannotated"]) == 0
    manifest = read_manifest(out)
    assert manifest["totals"]["samples"] == manifest["source"]["image_count"] == 34
    assert manifest["totals"]["images_without_annotations"] == 0 and manifest["settings"]["drop_unannotated"]
    assert manifest["source"]["dropped_unannotated"] == 2 and manifest["files_not_in_json"] == 0
    assert "left out 2 images without annotations" in capsys.readouterr().out
    packed = [sample for shard in sorted(out.glob("shard-*.tar")) for sample in read_samples(shard)]
    assert len(packed) == 34 and all(json.loads(sample.meta)["annotations"] for sample in packed)
    assert main(args) == 2  # without the flag: other settings, refused until --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(["shard", "build", "--images", str(images), "--out", str(tmp_path / "folder"), "--no-progress",
                 "--drop-unannotated"]) == 2
    assert "drop_unannotated: needs a COCO source" in capsys.readouterr().err
