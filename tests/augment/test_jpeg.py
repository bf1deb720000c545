"""JPEG: real codec round trip, quality ordering, per-image qualities, straight-through gradient."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from wam_pipe.augment import JPEG
from wam_pipe.core.imaging import from_unit, to_uint8, to_unit


def _photo_like(batch: int = 2, size: int = 64) -> torch.Tensor:
    """Smooth gradients plus mild texture, in pixel space: compresses like a photo, not like noise."""
    torch.manual_seed(0)
    ys = torch.linspace(0, 1, size).view(size, 1)
    xs = torch.linspace(0, 1, size).view(1, size)
    base = torch.stack([ys * xs, ys.expand(size, size), (1 - xs).expand(size, size)])  # (3, S, S)
    texture = 0.05 * torch.rand(batch, 3, size, size)
    return (0.1 + 0.8 * base + texture).clamp(0, 1)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a - b) ** 2).mean()))


def test_quality_95_is_close_and_quality_10_is_not():
    pixels = _photo_like()
    x, masks = from_unit(pixels), torch.ones(2, 1, 64, 64)
    high, out_masks = JPEG().apply(x, masks, 95)
    low, _ = JPEG().apply(x, masks, 10)
    assert out_masks is masks
    # (The texture caps quality 95 near 37 dB: chroma subsampling and 8-bit rounding; quality 10 is near 28.5.)
    assert _psnr(to_unit(high), pixels) > 34
    assert _psnr(to_unit(low), pixels) < _psnr(to_unit(high), pixels) - 6


def test_matches_a_pil_round_trip_of_the_same_quality():
    pixels = _photo_like(batch=1)
    out, _ = JPEG().apply(from_unit(pixels), torch.zeros(1, 1, 64, 64), 50)
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(from_unit(pixels))[0].permute(1, 2, 0).numpy()).save(buffer, "JPEG", quality=50)
    pil = torch.from_numpy(np.array(Image.open(buffer))).permute(2, 0, 1).float() / 255
    # Both use libjpeg with standard tables; decoders may differ by a rounding step.
    assert (to_unit(out)[0] - pil).abs().mean() < 2 / 255


def test_gradient_passes_straight_through():
    x = from_unit(_photo_like()).requires_grad_(True)
    out, _ = JPEG()(x, torch.zeros(2, 1, 64, 64))
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.equal(grad, torch.ones_like(x))


def test_per_image_qualities():
    pixels = _photo_like(batch=2)
    x = from_unit(pixels)
    out, _ = JPEG().transform(x, torch.zeros(2, 1, 64, 64), {"quality": torch.tensor([95, 10])})
    assert _psnr(to_unit(out[0]), pixels[0]) > _psnr(to_unit(out[1]), pixels[1]) + 6
    alone, _ = JPEG().apply(x[1:], torch.zeros(1, 1, 64, 64), 10)
    assert torch.allclose(out[1], alone[0])


def test_quality_range_is_validated():
    with pytest.raises(ValueError, match="jpeg.quality"):
        JPEG(quality=[0, 80])
    with pytest.raises(ValueError, match="jpeg.apply"):
        JPEG().apply(torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 8), 101)
