"""Summaries and tables made from metrics.json rows."""

from __future__ import annotations

import pytest

from wam_pipe.eval.summary import by_setting, compare_lines, report_lines, summarize


def rows() -> list[dict]:
    out = []
    for mask, offset in (("full", 0.1), ("box", 0.0)):
        out.append({"mask": mask, "aug": "identity", "strength": None, "bit_acc": 0.9 + offset / 2,
                    "msg_bit_acc": 1.0, "word_acc": 1.0, "acc": 0.9, "miou": 0.8, "psnr": 40.0, "ssim": 0.99})
        out.append({"mask": mask, "aug": "rotate", "strength": 30.0, "bit_acc": 0.6 + offset, "msg_bit_acc": None,
                    "word_acc": 0.0, "acc": 0.7, "miou": 0.5, "psnr": 40.0, "ssim": 0.99})
    return out


def test_by_setting_averages_over_masks_and_skips_nulls():
    settings = by_setting(rows())
    assert list(settings) == ["identity", "rotate 30"]
    assert settings["identity"]["bit_acc"] == pytest.approx(0.925)
    assert settings["rotate 30"]["bit_acc"] == pytest.approx(0.65)
    assert settings["rotate 30"]["msg_bit_acc"] is None


def test_summary_headline_numbers():
    multi = [{"source": "boxes", "roll": r, "k": k, "bit_acc": 0.5 + 0.1 * k, "miou": 0.3} for r in (False, True)
             for k in (1, 2)]
    summary = summarize(rows(), multi)
    assert summary["bit_acc"] == pytest.approx((0.95 + 0.7 + 0.9 + 0.6) / 4)
    assert summary["bit_acc_identity"] == pytest.approx(0.925)
    assert summary["multi_bit_acc_k2"] == pytest.approx(0.7)
    assert summary["psnr"] == pytest.approx(40.0)


def test_report_and_compare_tables():
    a = {"epoch": 3, "step": 30, "images": 10, "results": rows(), "summary": summarize(rows(), []), "multi_wm": []}
    better = [dict(r, bit_acc=1.0) for r in rows()]
    b = {"epoch": 5, "step": 50, "images": 10, "results": better, "summary": summarize(better, []), "multi_wm": []}
    lines = report_lines(a, "runs/a")
    assert lines[0].startswith("runs/a: epoch 3 step 30 | 10 images")
    assert any(line.startswith("rotate 30") and "0.650" in line and " - " in line for line in lines)
    full = report_lines(a, full=True)
    assert any(line.startswith("box / rotate 30") for line in full)
    compared = compare_lines(a, b, "A-run", "B-run")
    assert compared[0].startswith("A = A-run") and compared[1].startswith("B = B-run")
    rotate = next(line for line in compared if line.startswith("rotate 30"))
    assert "0.650" in rotate and "1.000" in rotate and "0.350" in rotate  # A, B, B - A
