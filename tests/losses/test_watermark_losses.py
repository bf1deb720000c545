"""Loss terms on hand-made inputs, inactive terms, empty masks, and gradient-norm balancing."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from wam_pipe.losses import LOSS_TERMS, WatermarkLosses
from wam_pipe.losses.terms import decoding_loss, hinge_discriminator_loss, perceptual_loss


def test_decoding_loss_is_pixel_weighted_over_masked_pixels():
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, :, 0, 0] = 10.0                                             # confident 1s at pixel (0,0)
    msgs = torch.tensor([[[1, 1]]])
    masks = torch.zeros(1, 1, 2, 2)
    masks[0, 0, 0, 0] = 1
    loss, count = decoding_loss(logits, msgs, masks)
    assert count.item() == 2
    assert math.isclose(loss.item(), F.softplus(torch.tensor(-10.0)).item(), rel_tol=1e-4)


def test_decoding_loss_empty_mask_is_zero_not_nan():
    logits = torch.randn(2, 4, 3, 3, requires_grad=True)
    loss, count = decoding_loss(logits, torch.ones(2, 1, 4), torch.zeros(2, 1, 3, 3))
    assert loss.item() == 0.0 and count.item() == 0
    loss.backward()                                                       # still part of the graph
    assert torch.count_nonzero(logits.grad) == 0


def test_perceptual_kinds_zero_for_identical_images():
    x = torch.randn(2, 3, 16, 16)
    for kind in ("mse", "yuv", "ssim"):
        assert perceptual_loss(x, x, kind).abs().item() < 1e-5
        assert perceptual_loss(x, x + 0.3, kind).item() > 0
    with pytest.raises(ValueError):
        perceptual_loss(x, x, "lpips")


def test_hinge_discriminator_loss_saturates():
    assert hinge_discriminator_loss(torch.full((4,), 2.0), torch.full((4,), -2.0)).item() == 0.0
    assert hinge_discriminator_loss(torch.zeros(4), torch.zeros(4)).item() == 1.0


def _inputs(nbits=4, empty=False):
    torch.manual_seed(0)
    preds = torch.randn(2, 1 + nbits, 8, 8, requires_grad=True)
    masks = torch.zeros(2, 1, 8, 8) if empty else (torch.rand(2, 1, 8, 8) > 0.5).float()
    msgs = torch.randint(0, 2, (2, 1, nbits))
    imgs = torch.randn(2, 3, 8, 8)
    return imgs, imgs + 0.1, preds, msgs, masks


def test_only_active_terms_are_computed():
    losses = WatermarkLosses(detection=1.0, decoding=0.0, balanced=False)
    terms = losses.terms(*_inputs(), disc_logits_fake=None)
    assert set(terms) == {"detection"}
    losses = WatermarkLosses(detection=1.0, decoding=2.0, perceptual=0.5, balanced=False)
    terms = losses.terms(*_inputs(), disc_logits_fake=None)
    assert set(terms) == {"detection", "decoding", "decoding_weight", "perceptual"}
    total, scales = losses.combine(terms, last_layer=None)
    expected = terms["detection"] + 2.0 * terms["decoding"] + 0.5 * terms["perceptual"]
    assert torch.allclose(total, expected)


def test_invalid_weights_rejected():
    with pytest.raises(ValueError, match="decoding"):
        WatermarkLosses(decoding=-1)
    with pytest.raises(ValueError, match="all loss weights are 0"):
        WatermarkLosses(detection=0, decoding=0)


def test_balancing_matches_gradient_norm_ratios():
    """Balanced: the decoding term's gradient at the last layer is (w_dec / w_det) times the detection one's."""
    torch.manual_seed(0)
    layer = torch.nn.Conv2d(3, 5, 1)
    x = torch.randn(2, 3, 8, 8)
    preds = layer(x)                                                      # (2, 1+4, 8, 8)
    masks = torch.ones(2, 1, 8, 8)
    msgs = torch.randint(0, 2, (2, 1, 4))
    losses = WatermarkLosses(detection=1.0, decoding=10.0, balanced=True)
    terms = losses.terms(x, x, preds, msgs, masks, None)
    total, scales = losses.combine(terms, last_layer=layer.weight)
    g_det = torch.autograd.grad(scales["detection"] * terms["detection"], layer.weight, retain_graph=True)[0].norm()
    g_dec = torch.autograd.grad(scales["decoding"] * terms["decoding"], layer.weight, retain_graph=True)[0].norm()
    assert math.isclose((g_dec / g_det).item(), 10.0, rel_tol=1e-4)


def test_balancing_drops_decoding_when_no_watermark():
    torch.manual_seed(0)
    layer = torch.nn.Conv2d(3, 5, 1)
    x = torch.randn(2, 3, 8, 8)
    losses = WatermarkLosses(detection=1.0, decoding=10.0, balanced=True)
    terms = losses.terms(x, x, layer(x), torch.randint(0, 2, (2, 1, 4)), torch.zeros(2, 1, 8, 8), None)
    _, scales = losses.combine(terms, last_layer=layer.weight)
    assert math.isclose(scales["detection"].item(), 1.0, rel_tol=1e-5)   # detection takes the whole budget
    assert scales["decoding"].item() == 0.0


@pytest.mark.parametrize("name", LOSS_TERMS)
def test_each_loss_term_is_a_weight_argument_checked_computed_and_logged(name):
    """Every term of LOSS_TERMS: a constructor argument (refused when negative, naming it), computed only when its
    weight is on, weighted by it in the total, and reported as `loss_<name>` (+ `scale_<name>` when balanced)."""
    with pytest.raises(ValueError, match=f"^{name}: loss weights must be >= 0"):
        WatermarkLosses(**{name: -1.0})
    others = {other: 0.0 for other in LOSS_TERMS if other != name}
    for balanced in (False, True):
        losses = WatermarkLosses(**others, **{name: 2.0}, balanced=balanced)
        assert losses.weights == {**others, name: 2.0}
        imgs, imgs_w, preds, msgs, masks = _inputs()
        fake = torch.randn(2, 1, 4, 4) if losses.uses_discriminator else None
        terms = losses.terms(imgs, imgs_w, preds, msgs, masks, disc_logits_fake=fake)
        assert set(terms) - {"decoding_weight"} == {name}
        layer = torch.nn.Parameter(torch.ones(())) if balanced else None
        total, scales = losses.combine({n: t * layer if balanced else t for n, t in terms.items()}, layer)
        logged = losses.metrics(terms, scales)
        assert set(logged) == ({f"loss_{name}", f"scale_{name}"} if balanced else {f"loss_{name}"})
        assert torch.equal(logged[f"loss_{name}"], terms[name].detach().float())
        if not balanced:
            assert torch.allclose(total, 2.0 * terms[name])
