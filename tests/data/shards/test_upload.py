"""`shard build --out s3://...` into moto's real S3 API server (and `gs://` into a Cloud Storage emulator): each
shard uploaded, the manifest last, resume, parts built from several "machines" into one bucket and merged there;
`shard verify` / `inspect` read the URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wam_pipe.cli import main
from wam_pipe.core.errors import UserError
from wam_pipe.data.location import ShardLocation
from wam_pipe.data.shards.upload import publish


@pytest.fixture()
def s3(moto_s3, monkeypatch):
    """The moto server as the CLI sees it: the endpoint from the environment (botocore's AWS_ENDPOINT_URL)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_s3.endpoint)
    fs = moto_s3.filesystem()
    if not fs.exists("uploads"):
        fs.mkdir("uploads")
    return fs


def _build(synth_coco, out: str, staging: Path, *extra: str) -> int:
    images, annotations = synth_coco
    return main(["shard", "build", "--images", str(images), "--annotations", str(annotations), "--out", out,
                 "--staging", str(staging), "--size", "64", "--samples-per-shard", "4", "--workers", "1",
                 "--no-progress", *extra])


@pytest.mark.slow
def test_build_uploads_every_shard_then_the_manifest_and_resumes(synth_coco, synth_shards, s3, tmp_path, capsys):
    assert _build(synth_coco, "s3://uploads/whole", tmp_path / "staging") == 0
    local = json.loads((synth_shards / "manifest.json").read_text())
    remote = json.loads(s3.cat("uploads/whole/manifest.json"))
    assert remote["shards"] == local["shards"]  # the same bytes as a local build
    for entry in local["shards"]:
        assert s3.cat(f"uploads/whole/{entry['name']}") == (synth_shards / entry["name"]).read_bytes()
    assert main(["shard", "verify", "s3://uploads/whole", "--workers", "1"]) == 0
    assert main(["shard", "inspect", "s3://uploads/whole", "--out", str(tmp_path / "grid.png"), "--samples", "4"]) == 0
    assert (tmp_path / "grid.png").stat().st_size > 0

    # An interrupted upload: two shards and the manifest never arrived. The rerun sends only those.
    for name in ("manifest.json", "shard-000002.tar", "shard-000007.tar"):
        s3.rm(f"uploads/whole/{name}")
    capsys.readouterr()
    assert _build(synth_coco, "s3://uploads/whole", tmp_path / "staging") == 0
    assert "uploaded 2 shards" in capsys.readouterr().out
    assert json.loads(s3.cat("uploads/whole/manifest.json")) == remote


def test_manifest_is_not_uploaded_when_a_shard_upload_fails(synth_shards, s3, tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    for path in synth_shards.glob("*.tar"):
        (staging / path.name).write_bytes(path.read_bytes())
    (staging / "manifest.json").write_bytes((synth_shards / "manifest.json").read_bytes())
    (staging / "shard-000005.tar").unlink()  # this upload fails
    with pytest.raises(UserError, match=r"shard-000005\.tar"):
        publish(staging, "manifest.json", ShardLocation("s3://uploads/failed"), progress=False)
    assert not s3.exists("uploads/failed/manifest.json")  # readers never see the incomplete set


@pytest.mark.slow
def test_parts_built_into_one_bucket_and_merged_there(synth_coco, synth_shards, s3, tmp_path):
    for part in range(2):
        assert _build(synth_coco, "s3://uploads/parts", tmp_path / f"machine{part}", "--num-parts", "2",
                      "--part", str(part)) == 0
    assert not s3.exists("uploads/parts/manifest.json")
    assert main(["shard", "merge", "s3://uploads/parts", "--out", "s3://uploads/parts"]) == 0
    merged = json.loads(s3.cat("uploads/parts/manifest.json"))
    assert merged == json.loads((synth_shards / "manifest.json").read_text())  # = a single-machine build's
    assert main(["shard", "verify", "s3://uploads/parts", "--workers", "1"]) == 0


def test_upload_over_http_or_an_unknown_scheme_is_refused(synth_coco, tmp_path, capsys):
    assert _build(synth_coco, "http://127.0.0.1:9/x", tmp_path / "s") == 2
    assert _build(synth_coco, "ftp://host/x", tmp_path / "s") == 2
    err = capsys.readouterr().err
    assert "cannot upload over http" in err and "unknown URL scheme 'ftp'" in err


@pytest.mark.slow
def test_build_uploads_to_gcs_and_verify_reads_it_back(synth_coco, synth_shards, gcs_server, tmp_path):
    """`--out gs://...` into a Cloud Storage emulator on 127.0.0.1 (gcsfs; address from the environment): the same
    bytes as a local build, the manifest last, and `shard verify` reads the URL."""
    import gcsfs

    fs = gcsfs.GCSFileSystem(skip_instance_cache=True)
    if not fs.exists("uploads"):
        fs.mkdir("uploads")
    assert _build(synth_coco, "gs://uploads/whole", tmp_path / "staging") == 0
    local = json.loads((synth_shards / "manifest.json").read_text())
    assert json.loads(fs.cat("uploads/whole/manifest.json"))["shards"] == local["shards"]
    for entry in local["shards"]:
        assert fs.cat(f"uploads/whole/{entry['name']}") == (synth_shards / entry["name"]).read_bytes()
    assert main(["shard", "verify", "gs://uploads/whole", "--workers", "1"]) == 0
