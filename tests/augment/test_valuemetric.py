"""Colour augmentations match torchvision's definitions, clamp to pixel range, leave masks alone; cover jitter."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.functional as TF

from wam_pipe.augment import Brightness, ColorJitter, Contrast, Hue, Saturation
from wam_pipe.core.imaging import from_unit, to_unit

TORCHVISION = {
    "brightness": TF.adjust_brightness,
    "contrast": TF.adjust_contrast,
    "saturation": TF.adjust_saturation,
    "hue": TF.adjust_hue,
}


def _pixels(batch: int = 3, size: int = 24) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(batch, 3, size, size)


@pytest.mark.parametrize(("aug", "strength"), [(Brightness(), 0.5), (Brightness(), 1.5), (Contrast(), 0.5),
                                               (Contrast(), 1.5), (Saturation(), 0.5), (Saturation(), 1.5),
                                               (Hue(), -0.5), (Hue(), -0.25), (Hue(), 0.25), (Hue(), 0.1)],
                         ids=lambda v: getattr(v, "name", str(v)))
def test_fixed_strength_matches_torchvision_and_keeps_masks(aug, strength):
    pixels = _pixels()
    masks = (torch.rand(3, 2, 24, 24) > 0.5).float()
    out, out_masks = aug.apply(from_unit(pixels), masks, strength)
    expected = torch.stack([TORCHVISION[aug.name](p, strength) for p in pixels])
    assert torch.allclose(to_unit(out), expected, atol=1e-4)
    assert out_masks is masks


def test_output_is_clamped_to_pixel_range():
    pixels = _pixels()
    out, _ = Brightness().apply(from_unit(pixels), torch.zeros(3, 1, 24, 24), 2.0)
    unit = to_unit(out)
    assert unit.max() <= 1.0 + 1e-5 and unit.min() >= -1e-5
    assert (unit > 1.0 - 1e-5).float().mean() > 0.2  # many pixels saturated: the clamp did something


@pytest.mark.parametrize("aug", [Brightness(), Contrast(), Saturation(), Hue()], ids=lambda a: a.name)
def test_per_sample_factors_differ_and_shared_factor_is_shared(aug):
    torch.manual_seed(2)
    same = from_unit(_pixels(batch=1).expand(4, -1, -1, -1).contiguous())
    masks = torch.zeros(4, 1, 24, 24)
    out, _ = aug(same, masks, per_sample=True)
    assert not torch.allclose(out[0], out[1], atol=1e-4)
    out, _ = aug(same, masks, per_sample=False)
    assert torch.allclose(out[0], out[3])


def test_random_factors_stay_in_the_configured_range():
    torch.manual_seed(0)
    pixels = torch.full((64, 3, 4, 4), 0.25)
    out, _ = Brightness(factor=[0.5, 2.0])(from_unit(pixels), torch.zeros(64, 1, 4, 4), per_sample=True)
    factors = to_unit(out)[:, 0, 0, 0] / 0.25
    assert factors.min() >= 0.5 - 1e-4 and factors.max() <= 2.0 + 1e-4
    assert factors.max() - factors.min() > 0.8  # spread over the range, not a constant


def test_hue_gradient_is_finite_on_grey_pixels():
    grey = torch.full((1, 3, 4, 4), 0.5)
    grey[..., 0, 0] = torch.tensor([0.9, 0.1, 0.4])
    x = from_unit(grey).requires_grad_(True)
    out, _ = Hue().apply(x, torch.zeros(1, 1, 4, 4), 0.2)
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.isfinite(grad).all()


def test_invalid_ranges_are_rejected_with_the_key():
    with pytest.raises(ValueError, match=r"hue\.shift"):
        Hue(shift=[-0.7, 0.1])
    with pytest.raises(ValueError, match=r"brightness\.factor"):
        Brightness(factor=[2.0, 0.5])
    with pytest.raises(ValueError, match=r"contrast\.weight"):
        Contrast(weight=-1)


def test_color_jitter_changes_each_image_differently_within_bounds():
    torch.manual_seed(4)
    pixels = _pixels(batch=1).expand(4, -1, -1, -1).contiguous()
    out = ColorJitter()(from_unit(pixels))
    assert out.shape == pixels.shape
    unit = to_unit(out)
    assert unit.min() >= -1e-5 and unit.max() <= 1 + 1e-5
    assert not torch.allclose(unit[0], unit[1], atol=1e-3)
    # A mild jitter: images stay close to the originals (brightness/contrast/saturation 0.2, hue 0.1).
    assert (unit - pixels).abs().mean() < 0.2


def test_color_jitter_with_everything_off_is_the_identity():
    imgs = from_unit(_pixels())
    assert ColorJitter(brightness=0, contrast=0, saturation=0, hue=0)(imgs) is imgs
    with pytest.raises(ValueError, match="cover_jitter.hue"):
        ColorJitter(hue=0.7)
