"""The sweep table and figure (`wam-pipe report` on a sweep dir) from per-point summaries."""

from __future__ import annotations

from PIL import Image

from wam_pipe.eval.sweep_table import best_points, plot_sweep, sweep_lines

SWEPT = {"stages.step.optimizer.lr": ["0.001", "0.0005"], "run.seed": ["0", "1"]}
VALUES = [{"stages.step.optimizer.lr": lr, "run.seed": seed} for lr in ("0.001", "0.0005") for seed in ("0", "1")]
SUMMARIES = [{"bit_acc": 0.9, "miou": 0.5}, {"bit_acc": 0.95, "miou": 0.5}, None, {"bit_acc": 0.7, "miou": 0.2}]


def test_best_points_ties_and_missing():
    assert best_points(SUMMARIES, "bit_acc") == {1}
    assert best_points(SUMMARIES, "miou") == {0, 1}
    assert best_points(SUMMARIES, "psnr") == set()


def test_one_column_per_point_one_row_per_metric():
    lines = sweep_lines(SWEPT, VALUES, SUMMARIES, ["bit_acc", "miou"])
    rows = {line.split()[0]: line.split()[1:] for line in lines[:6] if not line.startswith("-")}
    assert rows["point"] == ["0", "1", "2", "3"]
    assert rows["stages.step.optimizer.lr"] == ["0.001", "0.001", "0.0005", "0.0005"]
    assert rows["run.seed"] == ["0", "1", "0", "1"]
    assert rows["bit_acc"] == ["0.900", "0.950*", "-", "0.700"]
    assert rows["miou"] == ["0.500*", "0.500*", "-", "0.200"]
    assert "no evaluation yet: point 2" in lines
    widths = {len(line) for line in lines[:6]}
    assert len(widths) == 1                                       # columns line up


def test_the_figure_has_a_panel_per_metric(tmp_path):
    path = plot_sweep(SWEPT, VALUES, SUMMARIES, tmp_path / "sweep.png", ["bit_acc", "miou"])
    assert path == tmp_path / "sweep.png" and not list(tmp_path.glob(".*"))
    width, height = Image.open(path).size
    assert width > height                                        # two panels side by side
