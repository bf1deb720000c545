from __future__ import annotations

import io
import tarfile

import pytest
import webdataset as wds

from wam_pipe.data.shards.tar_io import ShardFormatError, ShardWriter, read_samples


def _samples(n: int) -> list[dict]:
    return [{"__key__": f"{i:012d}", "jpg": bytes([i]) * (100 + i), "json": b'{"i": %d}' % i} for i in range(n)]


def test_writer_is_deterministic_and_readable_by_webdataset(tmp_path):
    for name in ("a.tar", "b.tar"):
        with ShardWriter(tmp_path / name) as writer:
            for sample in _samples(5):
                writer.write(sample)
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    assert writer.info.samples == 5 and writer.info.bytes == (tmp_path / "b.tar").stat().st_size
    with tarfile.open(tmp_path / "a.tar") as archive:
        members = archive.getmembers()
    assert all(m.mtime == 0 and m.uid == m.gid == 0 and m.uname == m.gname == "" and m.mode == 0o444 for m in members)
    read_back = list(wds.WebDataset(str(tmp_path / "a.tar"), shardshuffle=False, empty_check=False))
    assert [s["__key__"] for s in read_back] == [f"{i:012d}" for i in range(5)]
    assert read_back[3]["jpg"] == bytes([3]) * 103


def test_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError):
        with ShardWriter(tmp_path / "x.tar") as writer:
            writer.write(_samples(1)[0])
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("start, stop", [(0, None), (2, 4), (4, None), (0, 0), (3, 99), (5, None)])
def test_reader_returns_the_requested_range(tmp_path, start, stop):
    with ShardWriter(tmp_path / "s.tar") as writer:
        for sample in _samples(5):
            writer.write(sample)
    got = list(read_samples(tmp_path / "s.tar", start, stop))
    expected = _samples(5)[start:stop]
    assert [(s.key, s.image, s.meta) for s in got] == [(e["__key__"], e["jpg"], e["json"]) for e in expected]


def test_reader_rejects_damage_and_foreign_layouts(tmp_path):
    with ShardWriter(tmp_path / "s.tar") as writer:
        for sample in _samples(3):
            writer.write(sample)
    data = (tmp_path / "s.tar").read_bytes()
    (tmp_path / "bad.tar").write_bytes(data[:600] + b"x" + data[601:])  # inside a member: not detected here
    (tmp_path / "header.tar").write_bytes(data[:100] + b"X" + data[101:])  # a header byte: checksum mismatch
    (tmp_path / "cut.tar").write_bytes(data[:700])
    with pytest.raises(ShardFormatError, match="checksum"):
        list(read_samples(tmp_path / "header.tar"))
    with pytest.raises(ShardFormatError, match="truncated"):
        list(read_samples(tmp_path / "cut.tar"))
    missing_json = io.BytesIO()
    with tarfile.open(fileobj=missing_json, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo("000000000001.jpg")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"abc"))
    (tmp_path / "nojson.tar").write_bytes(missing_json.getvalue())
    with pytest.raises(ShardFormatError, match="expected one image and one .json member"):
        list(read_samples(tmp_path / "nojson.tar"))
    pax = io.BytesIO()
    with tarfile.open(fileobj=pax, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("k" * 120 + ".jpg")  # a long name needs a pax header
        info.size = 1
        archive.addfile(info, io.BytesIO(b"a"))
    (tmp_path / "pax.tar").write_bytes(pax.getvalue())
    with pytest.raises(ShardFormatError, match="pax/GNU"):
        list(read_samples(tmp_path / "pax.tar"))
