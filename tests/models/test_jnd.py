"""JND attenuation: hand-computed heatmap values, fp32 under autocast, bounded change, presets, state dict."""

from __future__ import annotations

import pytest
import torch

from wam_pipe.core.errors import UserError
from wam_pipe.core.imaging import from_unit, to_unit
from wam_pipe.models import JND, jnd_1_1, jnd_1_3, jnd_1_3_blue, jnd_3_1, jnd_3_3

PRESETS = {"jnd_1_1": jnd_1_1, "jnd_3_3": jnd_3_3, "jnd_1_3": jnd_1_3, "jnd_1_3_blue": jnd_1_3_blue, "jnd_3_1": jnd_3_1}


def textured_images(batch: int = 2, size: int = 32) -> torch.Tensor:
    """Model-space images with flat areas, a hard edge and noise (pixel values in [0, 1])."""
    torch.manual_seed(0)
    unit = torch.rand(batch, 3, size, size) * 0.3 + 0.1
    unit[..., : size // 2, :] = 0.5  # flat top half
    unit[..., :, -4:] = 1.0  # bright stripe: strong gradients at its edge
    return from_unit(unit)


def test_flat_grey_heatmap_matches_the_formula():
    grey = torch.full((1, 3, 8, 8), 128 / 255)
    hmap = JND(in_channels=1, out_channels=1, blue=False).heatmap(grey)
    # la = 128 > 127 -> 3/128 * (128 - 127) + 3; no gradient -> no contrast masking. Zero padding (as the
    # reference) makes the outer 2 px see a dark frame, so the formula holds inside it.
    expected = (3 / 128 * (128 - 127) + 3) / 255
    torch.testing.assert_close(hmap[..., 2:-2, 2:-2], torch.full((1, 1, 4, 4), expected))


def test_dark_flat_heatmap_uses_the_luminance_branch():
    dark = torch.full((1, 3, 8, 8), 32 / 255)
    hmap = JND(in_channels=3, out_channels=3, blue=False).heatmap(dark)
    expected = 17 * (1 - (32 / 127 + 1e-5) ** 0.5) / 255  # the reference's eps inside the sqrt
    torch.testing.assert_close(hmap[..., 2:-2, 2:-2], torch.full((1, 3, 4, 4), expected))


def test_borders_are_zero_padded_as_the_reference():
    grey = torch.full((1, 3, 8, 8), 128 / 255)
    hmap = JND(in_channels=1, out_channels=1, blue=False).heatmap(grey)
    # At a corner the 5x5 luminance kernel keeps 11 of its 32 weights (its lower-right 3x3: 0+2+1, 2+2+1, 1+1+1).
    la = 128 * 11 / 32
    lum = 17 * (1 - (la / 127 + 1e-5) ** 0.5)
    assert hmap[0, 0, 0, 0] > lum / 255  # the Sobel response to the padded zeros adds contrast masking
    assert not torch.allclose(hmap[..., 0, :], hmap[..., 4, :])


def test_blue_weights_halve_red_and_green():
    hmap = jnd_1_3_blue().heatmap(to_unit(textured_images()))
    torch.testing.assert_close(hmap[:, 0], 0.5 * hmap[:, 2])
    torch.testing.assert_close(hmap[:, 1], 0.5 * hmap[:, 2])


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_output_changes_only_where_the_heatmap_allows(name):
    jnd = PRESETS[name]()
    imgs = textured_images()
    imgs_w = imgs + 0.5 * torch.randn_like(imgs)
    out = jnd(imgs, imgs_w)
    assert out.shape == imgs.shape and out.dtype == torch.float32
    hmap = jnd.heatmap(to_unit(imgs))
    change = (to_unit(out) - to_unit(imgs)).abs()
    allowed = hmap * (to_unit(imgs_w) - to_unit(imgs)).abs()
    assert (change <= allowed + 1e-5).all()
    assert change.max() > 0
    # Textured pixels (the stripe edge) tolerate more change than flat grey ones.
    if jnd.out_channels == 3:
        assert hmap[:, :, 4:12, -5].mean() > hmap[:, :, 4:12, 8].mean()


def test_fp32_and_finite_under_bf16_autocast():
    jnd = jnd_1_3_blue()
    unit = torch.zeros(1, 3, 16, 16)
    unit[..., 8:] = 1.0  # a black/white edge: g ~ 1000, g**2.4 ~ 1.6e7 (overflows fp16)
    imgs = from_unit(unit)
    imgs_w = imgs + 0.2
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = jnd(imgs.bfloat16(), imgs_w.bfloat16())
        assert jnd.heatmap(unit.half()).dtype == torch.float32
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert torch.isfinite(jnd.heatmap(unit)).all()


def test_gradient_flows_to_the_watermarked_image_only():
    jnd = jnd_1_3()
    imgs = textured_images()
    imgs_w = (imgs + 0.1).requires_grad_()
    jnd(imgs, imgs_w).sum().backward()
    assert torch.isfinite(imgs_w.grad).all()
    assert imgs_w.grad.abs().sum() > 0


def test_kernels_are_saved_but_not_trainable():
    jnd = jnd_3_3()
    assert list(jnd.parameters()) == []
    assert {"kernel_lum", "kernel_x", "kernel_y", "channel_weights"} <= set(jnd.state_dict())


def test_bad_arguments():
    with pytest.raises(UserError, match="blue"):
        JND(in_channels=1, out_channels=1, blue=True)
    with pytest.raises(ValueError, match="in_channels=2"):
        JND(in_channels=2)
