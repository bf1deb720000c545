"""Exact parity with the reference code: our released-configuration model, given the parity README's deterministic
weights in the reference layout, reproduces what the reference computed (../shared/reference/wam-parity/outputs.json)
for `embed` at 256 and 384 px and the extractor's logits, on CPU in fp32."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from wam_pipe.core.imaging import from_unit, to_unit
from wam_pipe.models.reference_layout import RELEASED, convert_reference_state, expected_layout

PARITY_DIR = Path(__file__).resolve().parents[3] / "shared" / "reference" / "wam-parity"

PIXEL_TOL = 1e-4
LOGIT_TOL = 1e-3

pytestmark = pytest.mark.skipif(not (PARITY_DIR / "outputs.json").is_file(),
                                reason=f"parity data not found at {PARITY_DIR} (only on the team's machines)")


def _released_shapes() -> dict[str, tuple[int, ...]]:
    lines = (PARITY_DIR / "keys.tsv").read_text().splitlines()[1:]
    rows = [line.split("\t") for line in lines if line.strip()]
    return {key: tuple(int(d) for d in shape.split("x")) for key, shape, _dtype in rows}


def test_our_layout_is_the_released_layout():
    _, shapes = expected_layout(RELEASED)
    assert shapes == _released_shapes()


@pytest.fixture(scope="module")
def released_model(reference_weights):
    state = reference_weights.deterministic_state(_released_shapes())
    model = RELEASED.build()
    model.load_state_dict(convert_reference_state(state, RELEASED, "parity"), strict=False)
    return model.eval()


def _at(tensor: torch.Tensor, index_cyx: list[list[int]]) -> torch.Tensor:
    c, y, x = (torch.tensor(i) for i in index_cyx)
    return tensor[0, c, y, x]


@pytest.mark.slow  # sam_base at 256 and 384 px on one CPU thread: 20-40 s on the shared 2-core machine
def test_embed_and_detect_reproduce_the_reference_outputs(released_model):
    cases = json.loads((PARITY_DIR / "outputs.json").read_text())["cases"]
    assert [c["imgs_w"]["shape"][-1] for c in cases] == [256, 384]
    errors = {}
    for case in cases:
        size = case["imgs_w"]["shape"][-1]
        x = torch.rand((1, 3, size, size), generator=torch.Generator().manual_seed(1234 + size))
        msg = torch.tensor([[float(b) for b in case["message"]]])
        with torch.no_grad():
            imgs_w = to_unit(released_model.embed(from_unit(x), msg))  # pixel space, not clamped
            preds = released_model.detect(from_unit(imgs_w))  # (1, 33, 256, 256) logits
        want_w, want_p = case["imgs_w"], case["preds"]
        assert list(imgs_w.shape) == want_w["shape"] and list(preds.shape) == want_p["shape"]
        pixel = (_at(imgs_w, want_w["index_cyx"]) - torch.tensor(want_w["values"])).abs().max().item()
        pixel = max(pixel, abs(imgs_w.mean().item() - want_w["mean"]), abs(imgs_w.std().item() - want_w["std"]),
                    abs((imgs_w - x).abs().mean().item() - want_w["delta_abs_mean"]))
        logit = (_at(preds, want_p["index_cyx"]) - torch.tensor(want_p["values"])).abs().max().item()
        means = preds.mean(dim=(0, 2, 3))
        logit = max(logit, (means - torch.tensor(want_p["channel_means"])).abs().max().item())
        errors[size] = (pixel, logit)
    print("parity max |error| (pixels, logits) per size:", errors)
    for size, (pixel, logit) in errors.items():
        assert pixel <= PIXEL_TOL, f"{size} px: pixels differ by {pixel:.2e}"
        assert logit <= LOGIT_TOL, f"{size} px: logits differ by {logit:.2e}"
