"""The README's main job, end to end through the real CLI: the quickstart learns as promised (slow: ~5 min)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image


@pytest.mark.slow
def test_quickstart_learns(repo_root, tmp_path):
    # Run from an empty folder so data/, shards/ and runs/ are created fresh, as on a new machine.
    result = subprocess.run([sys.executable, "-m", "wam_pipe", "run", str(repo_root / "pipelines" / "quickstart.yaml")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "runs" / "quickstart"
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["epoch"] == 29
    cell = next(r for r in metrics["results"] if r["mask"] == "full" and r["aug"] == "identity")
    assert cell["bit_acc"] >= 0.90 and cell["miou"] >= 0.80 and cell["psnr"] > 0
    history = (run_dir / "eval" / "history.jsonl").read_text().splitlines()
    assert len(history) == 3                                          # epochs 10, 20, 30
    for picture in ("eval/grid.png", "eval/robustness.png", "curves.png"):
        with Image.open(run_dir / picture) as image:
            assert image.width > 200 and image.height > 100
