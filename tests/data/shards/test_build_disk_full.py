"""A shard build that fills its disk (a real, small tmpfs): one line naming the path, then a rerun resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_disk_full_during_a_build_is_one_line_and_the_rerun_resumes(synth_coco, small_tmpfs):
    images, annotations = synth_coco
    mount, resize = small_tmpfs
    out = mount / "shards"
    command = [sys.executable, "-m", "wam_pipe", "shard", "build", "--images", str(images), "--annotations",
               str(annotations), "--out", str(out), "--size", "128", "--samples-per-shard", "4", "--workers", "1"]
    full = subprocess.run(command, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert full.returncode == 1, full.stderr
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in full.stderr, full.stderr
    assert f"{out}/" in lines[0] and "no space left on the device" in lines[0] and "rerun" in lines[0]
    finished = len(list(out.glob("shard-*.tar")))
    assert finished >= 1 and not list(out.glob("*.tmp"))  # finished shards kept, no partial temp file
    resize(8192)
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert resumed.returncode == 0, resumed.stderr
    assert f"reused {finished}" in resumed.stdout
    assert json.loads((out / "manifest.json").read_text())["totals"]["samples"] == 36
