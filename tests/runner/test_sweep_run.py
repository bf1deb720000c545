"""`wam-pipe run --multirun` end to end on the tiny pipeline (2 points), then `wam-pipe report` on the sweep dir."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from wam_pipe.cli import main


@pytest.mark.slow  # 4 tiny runs (2 points, then their resume): ~30 s on the shared 2-core machine
def test_a_two_point_sweep(tiny_with_eval, tmp_path, capsys):
    runs = tmp_path / "runs"
    argv = ["run", str(tiny_with_eval), "--multirun", "stages.step.scaling_w=0.5,1.0", "run.epochs=1",
            "run.steps_per_epoch=1", "--output-dir", str(runs)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    (root,) = runs.iterdir()
    assert root.name.startswith("sweep-") and f"done: {root} (2/2 points)" in out
    described = json.loads((root / "sweep.json").read_text())
    assert described["swept"] == {"stages.step.scaling_w": ["0.5", "1.0"]}
    assert [p["values"] for p in described["points"]] == [{"stages.step.scaling_w": "0.5"},
                                                          {"stages.step.scaling_w": "1.0"}]
    for i, scaling in enumerate(("0.5", "1.0")):
        assert f"scaling_w: {scaling}" in (root / str(i) / "resolved.yaml").read_text()
        assert (root / str(i) / "eval" / "metrics.json").is_file()
    steps = [(root / str(i) / "log.jsonl").read_text() for i in range(2)]

    # the same command again: the same sweep dir, every point resumed at its end (no new training step)
    assert main(argv) == 0
    capsys.readouterr()
    assert list(runs.iterdir()) == [root]
    assert [(root / str(i) / "log.jsonl").read_text().count('"kind": "train"') for i in range(2)] == [
        s.count('"kind": "train"') for s in steps]

    assert main(["report", str(root), "--metrics", "bit_acc,psnr"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("stages.step.scaling_w"))
    assert header.split()[1:] == ["0.5", "1.0"]
    for metric in ("bit_acc", "psnr"):
        row = next(line for line in lines if line.startswith(metric)).split()
        assert len(row) == 3 and sum(cell.endswith("*") for cell in row) >= 1
    assert Image.open(root / "sweep.png").size[0] > 0
