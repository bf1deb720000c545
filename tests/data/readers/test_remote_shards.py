"""Shards read from URLs through real servers on 127.0.0.1 (an HTTP server process, moto's S3 API server, a Cloud
Storage emulator).

The batches of an epoch from a URL must equal those from the local folder (keys and bytes), for 2 ranks x 2
workers; errors (missing manifest, unreachable host, resized shard, a server killed mid-epoch) are one line naming
the URL, within the configured timeout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from wam_pipe.core.context import RunContext
from wam_pipe.core.errors import UserError
from wam_pipe.stages.load import Load

FAST_IO = {"io_timeout": 5.0, "io_retries": 1}


def _ctx(rank: int = 0, world: int = 1) -> RunContext:
    return RunContext(run_dir=Path("."), seed=5, rank=rank, world_size=world, log=lambda message: None)


def _loads(shards: str, world: int = 2, **kw) -> list[Load]:
    settings = {"size": 64, "batch_size": 3, "workers": 2, "shuffle_buffer": 8, **FAST_IO, **kw}
    loads = []
    for rank in range(world):
        load = Load(shards=str(shards), **settings)
        load.setup(_ctx(rank, world))
        loads.append(load)
    return loads


def _epoch(loads: list[Load], epoch: int) -> list[list[dict]]:
    return [list(load.epoch(epoch)) for load in loads]


def _assert_same_batches(got: list[list[dict]], want: list[list[dict]]) -> None:
    assert [len(rank) for rank in got] == [len(rank) for rank in want]
    for got_rank, want_rank in zip(got, want):
        for got_batch, want_batch in zip(got_rank, want_rank):
            assert got_batch["keys"] == want_batch["keys"]
            assert torch.equal(got_batch["images"], want_batch["images"])
            assert torch.equal(got_batch["masks"], want_batch["masks"])


class _LocalEpochs:
    """The local folder's batches per epoch (2 ranks x 2 workers), computed once when first asked for."""

    def __init__(self, shards: Path):
        self.shards, self.loads, self.epochs = shards, None, {}

    def __getitem__(self, epoch: int) -> list[list[dict]]:
        if epoch not in self.epochs:
            self.loads = self.loads or _loads(str(self.shards))
            self.epochs[epoch] = _epoch(self.loads, epoch)
        return self.epochs[epoch]


@pytest.fixture(scope="module")
def local_epochs(synth_shards: Path) -> _LocalEpochs:
    return _LocalEpochs(synth_shards)


@pytest.mark.slow
def test_http_epoch_equals_the_local_folder_2_ranks_x_2_workers(http_shards, local_epochs):
    batches = _epoch(_loads(http_shards), 0)
    _assert_same_batches(batches, local_epochs[0])
    keys = sorted(k for rank in batches for batch in rank for k in batch["keys"])
    assert keys == [f"{i:012d}" for i in range(1, 37)]  # every sample once (36 = 2 ranks x 6 batches x 3)


@pytest.mark.slow
def test_s3_epochs_equal_the_local_folder_2_ranks_x_2_workers(s3_shards, moto_s3, local_epochs):
    loads = _loads(s3_shards, storage_options={"endpoint_url": moto_s3.endpoint})
    for epoch in range(2):
        _assert_same_batches(_epoch(loads, epoch), local_epochs[epoch])


@pytest.mark.slow
def test_gcs_epoch_equals_the_local_folder_2_ranks_x_2_workers(gcs_shards, local_epochs):
    """gs:// through gcsfs against a Cloud Storage emulator on 127.0.0.1 (its address and anonymous access come
    from the environment, as credentials do)."""
    _assert_same_batches(_epoch(_loads(gcs_shards), 0), local_epochs[0])


def test_pipe_command_reads_like_the_local_folder(synth_shards, local_epochs):
    # The default suite's equality check (a forward-only stream, 2 ranks x 2 workers); the HTTP and S3 ones are slow.
    loads = _loads(f"pipe:cat {synth_shards}/{{name}}")
    _assert_same_batches(_epoch(loads, 0), local_epochs[0])


@pytest.mark.slow
def test_cache_is_filled_once_and_reused_across_epochs_and_runs(http_shards, synth_shards, local_epochs, tmp_path):
    cache = tmp_path / "cache"
    loads = _loads(http_shards, cache_dir=str(cache))
    _assert_same_batches(_epoch(loads, 0), local_epochs[0])
    cached = sorted(cache.rglob("*.tar"))
    assert [p.name for p in cached] == sorted(p.name for p in synth_shards.glob("*.tar"))
    assert all(p.read_bytes() == (synth_shards / p.name).read_bytes() for p in cached)
    assert not list(cache.rglob("*.tmp"))
    stamps = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cached}
    _assert_same_batches(_epoch(loads, 1), local_epochs[1])
    again = _loads(http_shards, cache_dir=str(cache))  # a new run over the same cache
    _assert_same_batches(_epoch(again, 0), local_epochs[0])
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cached} == stamps  # never downloaded again


def test_missing_manifest_is_one_line_naming_the_url(http_shards):
    with pytest.raises(UserError, match=r"http://127\.0\.0\.1:\d+/nothing-here/manifest\.json: no shard manifest"):
        _loads(http_shards + "/nothing-here", world=1)


def test_unreachable_host_fails_after_bounded_retries(servers):
    url = f"http://127.0.0.1:{servers['port']()}/shards"
    with pytest.raises(UserError, match=rf"{url}/manifest\.json: cannot read .* after 2 tries"):
        _loads(url, world=1, io_retries=1, io_timeout=2.0)


def test_shard_of_another_size_than_the_manifest_is_refused(synth_shards, tmp_path, servers):
    copy = tmp_path / "copy"
    shutil.copytree(synth_shards, copy)
    with open(copy / "shard-000003.tar", "ab") as stream:
        stream.write(bytes(512))
    server = servers["http"](copy)
    with pytest.raises(UserError, match=r"/shard-000003\.tar: \d+ bytes, the manifest says \d+"):
        _loads(server.url, world=1)


def test_unknown_scheme_is_refused_not_read_as_a_path():
    with pytest.raises(UserError, match=r"unknown URL scheme 'ftp'"):
        _loads("ftp://host/shards", world=1)
    assert Load(shards="s3://bucket/x")._value_problems() == []
    problems = Load(shards="ftp://host/x", storage_options={"secret": "x"})._value_problems()
    assert [key for key, _ in problems] == ["shards", "storage_options"]


KILL_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from wam_pipe.core.context import RunContext
    from wam_pipe.core.errors import UserError
    from wam_pipe.stages.load import Load

    load = Load(shards=sys.argv[1], size=64, batch_size=2, workers=2, prefetch_factor=1, shuffle=False,
                io_timeout=3.0, io_retries=1)
    load.setup(RunContext(run_dir=Path("."), seed=5, rank=0, world_size=1, log=print))
    batches = iter(load.epoch(0))
    next(batches)
    print("first batch", flush=True)
    sys.stdin.readline()  # the test kills the server, then says go
    try:
        for batch in batches:
            pass
    except UserError as err:
        print(err, file=sys.stderr)
        sys.exit(2)
    sys.exit(0)
""")


@pytest.mark.slow
def test_server_killed_mid_epoch_stops_the_epoch_with_a_clear_error(synth_shards, tmp_path, servers):
    copy = tmp_path / "served"
    shutil.copytree(synth_shards, copy)
    server = servers["http"](copy)
    run = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, server.url], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert run.stdout.readline().strip() == "first batch"
        server.kill()
        _, stderr = run.communicate("go\n", timeout=120)  # the test's own timeout: a hang fails here
    finally:
        server.kill()
        if run.poll() is None:
            run.kill()
    assert run.returncode == 2, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(server.url + "/shard-") and "cannot read" in last


@pytest.mark.slow
def test_forbidden_bucket_is_one_line_naming_the_url(s3_env, servers):
    server = servers["moto"](INITIAL_NO_AUTH_ACTION_COUNT="0")  # every request must carry valid IAM credentials
    with pytest.raises(UserError, match=r"s3://shards/x/manifest\.json: access denied"):
        _loads("s3://shards/x", world=1, storage_options={"endpoint_url": server.endpoint})
