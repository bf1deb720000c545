"""Shard locations: which specs are accepted, how they join names, pipe: streams, forward-only skips and retries."""

from __future__ import annotations

import io

import pytest

from wam_pipe.core.errors import UserError
from wam_pipe.data.location import IOSettings, RetryingStream, ShardLocation, is_url, scheme_problem


@pytest.mark.parametrize("spec", ["shards/train", "/abs/shards", "file:///abs/shards", "s3://b/x", "gs://b/x",
                                  "http://h:8000/x", "https://h/x", "pipe:curl -sf http://h/x/{name}"])
def test_accepted_specs(spec):
    assert scheme_problem(spec) is None


@pytest.mark.parametrize("spec, message", [("ftp://h/x", "unknown URL scheme 'ftp'"),
                                           ("S4://b/x", "unknown URL scheme 'S4'"),
                                           ("pipe:cat shard.tar", "must contain {name}")])
def test_refused_specs(spec, message):
    assert message in scheme_problem(spec)
    with pytest.raises(UserError, match=message.replace("{", r"\{").replace("}", r"\}")):
        ShardLocation(spec)


def test_urls_join_names_and_file_urls_are_local(tmp_path):
    assert ShardLocation("s3://b/x/").url("manifest.json") == "s3://b/x/manifest.json"
    assert ShardLocation("pipe:cat /d/{name}").url("shard-000001.tar") == "pipe:cat /d/shard-000001.tar"
    local = ShardLocation(f"file://{tmp_path}")
    assert local.is_local and local.path == tmp_path and not is_url(f"file://{tmp_path}")
    assert is_url("s3://b/x") and is_url("pipe:cat {name}") and not is_url("shards/x")


def test_pipe_reads_a_file_and_a_failing_command_names_the_url(tmp_path):
    (tmp_path / "a.bin").write_bytes(bytes(range(256)) * 100)
    location = ShardLocation(f"pipe:cat {tmp_path}/{{name}}", IOSettings(timeout=5, retries=0))
    with location.open("a.bin", 25600) as stream:
        stream.seek(1000, 1)  # a forward skip reads and discards
        assert stream.read(3) == bytes([1000 % 256, 1001 % 256, 1002 % 256])
    with pytest.raises(UserError, match=r"pipe:cat .*/missing\.bin: cannot read \(OSError: command exited with 1"):
        location.read_bytes("missing.bin")


class _Flaky:
    """A source that breaks after `cut` bytes on its first opening (a dropped connection)."""

    def __init__(self, data: bytes, cut: int, openings: list[int]):
        self.stream, self.cut, self.openings = io.BytesIO(data), cut, openings
        openings.append(1)

    def read(self, n: int) -> bytes:
        if len(self.openings) == 1 and self.stream.tell() >= self.cut:
            raise ConnectionResetError("connection reset by peer")
        return self.stream.read(min(n, self.cut - self.stream.tell()) if len(self.openings) == 1 else n)

    def close(self) -> None:
        pass


def test_a_dropped_stream_is_reopened_and_read_forward_to_the_break():
    data = bytes(range(256)) * 64
    openings: list[int] = []
    stream = RetryingStream(lambda: _Flaky(data, 5000, openings), "http://h/x", IOSettings(retries=2), len(data))
    assert stream.read(len(data)) == data and len(openings) == 2


def test_retries_are_bounded_and_the_error_names_the_url():
    def refuse():
        raise ConnectionRefusedError("connection refused")

    stream = RetryingStream(refuse, "http://h/x/shard.tar", IOSettings(retries=1))
    with pytest.raises(UserError, match=r"http://h/x/shard\.tar: cannot read \(ConnectionRefusedError: .*after 2 tries"):
        stream.read(10)


def test_credentials_in_storage_options_are_refused():
    problems = IOSettings(storage_options={"endpoint_url": "http://h", "key": "AKIA"}).problems()
    assert [key for key, _ in problems] == ["storage_options"] and "['key']" in problems[0][1]
    assert IOSettings(timeout=0, retries=-1).problems()[0][0] == "io_timeout"
