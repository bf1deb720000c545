"""The cached image-space constants stay usable for training after a first use under `torch.inference_mode`
(the Python API's embed/detect) in the same process."""

import torch

from wam_pipe.core.imaging import _stats_on, from_unit, to_unit
from wam_pipe.losses.terms import _yuv_constants, perceptual_loss


def test_constants_first_built_in_inference_mode_still_train():
    _stats_on.cache_clear()
    _yuv_constants.cache_clear()
    with torch.inference_mode():
        to_unit(torch.zeros(1, 3, 4, 4))
        perceptual_loss(torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8), "yuv")
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    loss = from_unit(to_unit(x)).sum() + perceptual_loss(torch.zeros(1, 3, 8, 8), x, "yuv")
    loss.backward()   # raised "Inference tensors cannot be saved for backward" when the cache held inference tensors
    assert x.grad is not None and torch.isfinite(x.grad).all()
