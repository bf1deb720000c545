"""robustness.png and curves.png: fixed pixel sizes, drawn from real metrics rows and log records."""

from __future__ import annotations

import json

from PIL import Image

from wam_pipe.eval.pictures import read_jsonl, save_curves_plot, save_robustness_plot


def test_robustness_plot_is_1200_by_800_even_with_missing_values(tmp_path):
    labels = ["identity", "rotate 10", "jpeg 50"]
    rows = [{"mask": m, "aug": "x", "bit_acc": None if (m == "segm" and i == 1) else 0.5 + 0.1 * i, "miou": 0.7}
            for m in ("full", "segm") for i in range(3)]
    path = tmp_path / "eval" / "robustness.png"
    save_robustness_plot(path, rows, labels, ["full", "segm"])
    with Image.open(path) as image:
        assert image.size == (1200, 800)


def test_curves_from_log_and_history(tmp_path):
    log = tmp_path / "log.jsonl"
    records = [{"kind": "train", "epoch": 0, "step": s, "loss": 2.0 / s, "loss_detection": 1.0 / s,
                "loss_decoding": 1.0 / s, "bit_acc": 0.5 + s / 100, "psnr": 30 + s / 10, "miou": 0.4} for s in
               range(1, 30)]
    log.write_text("\n".join(json.dumps(r) for r in records) + "\n{broken line\n")
    history = [{"epoch": 0, "step": 29, "bit_acc": 0.7, "miou": 0.5}]
    assert len(read_jsonl(log)) == len(records)  # the cut-short last line is skipped
    assert save_curves_plot(tmp_path / "curves.png", read_jsonl(log), history)
    with Image.open(tmp_path / "curves.png") as image:
        assert image.size == (1200, 800)


def test_no_training_log_means_no_curves(tmp_path):
    assert not save_curves_plot(tmp_path / "curves.png", read_jsonl(tmp_path / "missing.jsonl"), [])
    assert not (tmp_path / "curves.png").exists()
