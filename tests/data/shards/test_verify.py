from __future__ import annotations

import json
import shutil

import pytest

from wam_pipe.data.shards.verify import verify_shards


@pytest.fixture
def copy(synth_shards, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(synth_shards, target)
    return target


def test_sound_shards_verify_clean(synth_shards):
    manifest, problems = verify_shards(synth_shards, workers=2)
    assert problems == [] and manifest["totals"]["samples"] == 36


def test_changed_bytes_are_caught_and_named(copy):
    path = copy / "shard-000004.tar"
    data = bytearray(path.read_bytes())
    data[700:760] = bytes(60)  # inside the first sample's JPEG
    path.write_bytes(bytes(data))
    _, problems = verify_shards(copy, workers=1)
    assert any(p.startswith("shard-000004.tar: sha256 differs") for p in problems)
    assert any(p.startswith("shard-000004.tar: 000000000017: image does not decode") for p in problems)


def test_missing_shard_and_wrong_counts_are_caught(copy):
    (copy / "shard-000001.tar").unlink()
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["shards"][2]["samples"] = 5
    (copy / "manifest.json").write_text(json.dumps(manifest))
    _, problems = verify_shards(copy, workers=1)
    assert "shard-000001.tar: file missing" in problems
    assert "shard-000002.tar: holds 4 samples, manifest says 5" in problems


def test_unexpected_members_are_reported(copy):
    # Issue 11 item 14: shards carrying extra .pickle/.pth members verified OK.
    from wam_pipe.data.shards.tar_io import ShardWriter, read_samples

    path = copy / "shard-000003.tar"
    samples = list(read_samples(path))
    with ShardWriter(path) as writer:
        for i, sample in enumerate(samples):
            members = {"__key__": sample.key, sample.image_ext: sample.image, "json": sample.meta}
            if i == 1:
                members.update({"pickle": b"\x80\x04N.", "pth": b"PK"})
            writer.write(members)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["shards"][3].update(bytes=writer.info.bytes, sha256=writer.info.sha256)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    _, problems = verify_shards(copy, workers=1)
    assert problems == [f"shard-000003.tar: {samples[1].key}: unexpected members {samples[1].key}.pickle, "
                        f"{samples[1].key}.pth (a shard build writes only the image and the .json)"]
