"""One evaluation pass: deterministic, independent of batching, restores the model's mode, draws grid.png."""

from __future__ import annotations

import pytest
import torch
from eval_fakes import FakeLoad, tiny_model
from PIL import Image

from wam_pipe.eval.engine import EvalPlan, evaluate_batches
from wam_pipe.eval.grid import Grid, build_settings
from wam_pipe.eval.pictures import grid_picture_size
from wam_pipe.core.context import RunContext


def plan(**kw) -> EvalPlan:
    grid = Grid(["full", "box", "segm"], build_settings({"identity": None, "rotate": [30], "jpeg": [50]}))
    return EvalPlan(grid=grid, **kw)


def test_same_weights_same_numbers_whatever_the_batch_size(tmp_path):
    ctx = RunContext(run_dir=tmp_path)
    model = tiny_model()
    a = evaluate_batches(ctx, model, FakeLoad(batch_size=4).epoch(0), plan(multi_wm=True, multi_wm_max=2), None)
    b = evaluate_batches(ctx, model, FakeLoad(batch_size=4).epoch(0), plan(multi_wm=True, multi_wm_max=2), None)
    c = evaluate_batches(ctx, model, FakeLoad(batch_size=1).epoch(0), plan(multi_wm=True, multi_wm_max=2), None)
    assert a.results == b.results and a.multi_wm == b.multi_wm  # bit-identical on a repeat
    assert a.images == 6 and len(a.results) == 9 and len(a.multi_wm) == 2 * 2 * 2
    for row_a, row_c in zip(a.results, c.results):  # messages follow the image, not the batch
        assert row_a == pytest.approx(row_c)


def test_another_seed_gives_other_messages(tmp_path):
    ctx = RunContext(run_dir=tmp_path)
    model = tiny_model()
    a = evaluate_batches(ctx, model, FakeLoad().epoch(0), plan(seed=0), None)
    b = evaluate_batches(ctx, model, FakeLoad().epoch(0), plan(seed=1), None)
    assert [r["bit_acc"] for r in a.results] != [r["bit_acc"] for r in b.results]


def test_model_mode_is_restored_and_no_gradients_are_kept(tmp_path):
    model = tiny_model().train()
    evaluate_batches(RunContext(run_dir=tmp_path), model, FakeLoad().epoch(0), plan(), None)
    assert model.training and all(p.grad is None for p in model.parameters())
    model.eval()
    evaluate_batches(RunContext(run_dir=tmp_path), model, FakeLoad().epoch(0), plan(), None)
    assert not model.training


def test_grid_picture_has_the_stated_size(tmp_path):
    path = tmp_path / "eval" / "grid.png"
    evaluate_batches(RunContext(run_dir=tmp_path), tiny_model(), FakeLoad(batch_size=4).epoch(0), plan(pictures=3),
                     path)
    with Image.open(path) as image:
        assert image.size == grid_picture_size(32, 3) == (5 * 32 + 6 * 2, 14 + 3 * 32 + 4 * 2)
        assert image.mode == "RGB"


def test_batches_without_keys_are_refused(tmp_path):
    batch = {"images": torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "masks": torch.zeros(1, 1, 32, 32)}
    with pytest.raises(ValueError, match="keys"):
        evaluate_batches(RunContext(run_dir=tmp_path), tiny_model(), [batch], plan(), None)
