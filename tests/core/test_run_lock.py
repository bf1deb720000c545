"""The directory lock of run dirs and shard outputs: one writer, a one-line refusal, stale locks taken over."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from wam_pipe.core.errors import UserError
from wam_pipe.core.run_lock import DirLock, lock_path

REPO = Path(__file__).resolve().parents[2]
HOLD = "import sys, time; from wam_pipe.core.run_lock import DirLock; DirLock(sys.argv[1]).__enter__(); " \
       "print('held', flush=True); time.sleep(120)"


@pytest.fixture
def holder(tmp_path):
    """A separate process holding the lock of tmp_path/target; yields (process, target)."""
    target = tmp_path / "target"
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "held"
        yield process, target
    finally:
        process.kill()
        process.wait(timeout=30)


def test_a_second_writer_is_refused_naming_the_holder(holder):
    process, target = holder
    with pytest.raises(UserError, match=rf"target: in use by PID {process.pid} on {socket.gethostname()}; wait"):
        DirLock(target).__enter__()


def test_the_lock_of_a_killed_process_is_taken_over(holder):
    process, target = holder
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert lock_path(target).exists()  # left behind by the dead holder
    with DirLock(target):
        assert lock_path(target).read_text().split() == [str(os.getpid()), socket.gethostname()]
    with DirLock(target):  # released on exit
        pass
    assert not lock_path(target).exists()  # and removed: nothing is left beside the directory


def _cli(capsys, *args: str) -> subprocess.CompletedProcess:
    """The real CLI in this process (torch is already imported: seconds instead of a new interpreter's ~30 s)."""
    from wam_pipe.cli import main

    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


@pytest.mark.parametrize("extra", [[], ["--overwrite"]])
def test_wam_pipe_run_on_a_run_dir_in_use_exits_2_with_one_line(holder, extra, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    process, target = holder
    result = _cli(capsys, "run", "pipelines/quickstart.yaml", "--output-dir", str(target), *extra)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"{target}: in use by PID {process.pid} on "
                                                   f"{socket.gethostname()}; wait for it to finish, or choose "
                                                   "another --output-dir"]


def test_shard_build_into_an_output_in_use_exits_2_with_one_line(holder, tmp_path, capsys):
    process, target = holder
    annotations = tmp_path / "a.json"
    annotations.write_text('{"images": [], "annotations": [], "categories": []}')
    result = _cli(capsys, "shard", "build", "--images", str(tmp_path), "--annotations", str(annotations), "--out",
                  str(target))
    assert result.returncode == 2, result.stderr
    assert f"in use by PID {process.pid}" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("where", ["under_a_file", "proc"])
def test_an_unusable_output_dir_is_one_line(tmp_path, where, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    # Issue 11 item 7: PermissionError / NotADirectoryError / FileNotFoundError tracebacks before.
    if where == "under_a_file":
        (tmp_path / "file").write_text("x")
        target = tmp_path / "file" / "run"
    else:
        target = Path("/proc/wam-pipe-test/run")
    result = _cli(capsys, "run", "pipelines/quickstart.yaml", "--output-dir", str(target))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{target}: cannot be written" in lines[0] and "choose another --output-dir" in lines[0]
