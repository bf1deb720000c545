"""The calibration cases: the fixed box and the JPEG round trip (the command is tested in
tests/cli/test_calibrate_cli.py)."""

from __future__ import annotations

import pytest
import torch

from wam_pipe.inference.calibrate import box_mask, jpeg_round_trip


def test_cases_are_what_they_say():
    mask = box_mask(80, 100)
    assert float(mask.mean()) == pytest.approx(0.2)
    image = torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8)
    again = jpeg_round_trip(image)
    assert again.shape == image.shape and again.dtype == torch.uint8 and not torch.equal(again, image)
