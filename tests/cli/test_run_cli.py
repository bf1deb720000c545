"""`wam-pipe run` argument checks that need no run."""

from __future__ import annotations

from pathlib import Path

import pytest

from wam_pipe.cli import main

QUICKSTART = str(Path(__file__).resolve().parents[2] / "pipelines" / "quickstart.yaml")


@pytest.mark.parametrize("nproc", ["0", "-1"])
def test_nproc_below_one_is_refused(nproc, capsys):
    # Issue 11 item 13: silently accepted (ran one process).
    assert main(["run", QUICKSTART, "--nproc", nproc]) == 2
    assert capsys.readouterr().err.strip() == f"--nproc {nproc}: give the number of processes to launch, at least 1"
