"""Geometric augmentations move the image and its masks identically and keep the input size."""

from __future__ import annotations

import pytest
import torch
from augment_helpers import SQUARE_VALUE, centre_of_mass, image_pattern, square_batch

from wam_pipe.augment import Crop, CropResizePad, HorizontalFlip, Identity, Perspective, Resize, Rotate
from wam_pipe.augment._common import InvalidSetting

FIXED = [
    (HorizontalFlip(), None),
    (Rotate(), 10),
    (Rotate(), 45),
    (Rotate(), 90),
    (Resize(), 0.5),
    (Resize(), 1.4),
    (Crop(), 0.5),
    (Crop(), 0.75),
    (Perspective(), 0.2),
    (Perspective(), 0.8),
    (CropResizePad(), 0.7),
]
RANDOM = [Rotate(), Resize(), Crop(size=[0.6, 1.0]), Perspective(), CropResizePad(), HorizontalFlip()]


def _assert_aligned(imgs: torch.Tensor, masks: torch.Tensor, tolerance: float = 1.5) -> None:
    """The square's centre of mass is the same in the images and the masks (images where it left the frame are
    skipped; at least one must remain, else the check would prove nothing)."""
    kept = masks[:, 0].sum(dim=(1, 2)) > 0
    assert kept.any(), "the pattern left every image"
    image_com = centre_of_mass(image_pattern(imgs[kept]))
    mask_com = centre_of_mass(masks[kept, 0])
    assert torch.allclose(image_com, mask_com, atol=tolerance), (image_com, mask_com)


@pytest.mark.parametrize(("aug", "strength"), FIXED, ids=lambda v: getattr(v, "name", str(v)))
def test_fixed_strength_moves_image_and_mask_together(aug, strength):
    imgs, masks = square_batch(batch=2, size=64)
    out, out_masks = aug.apply(imgs, masks, strength)
    assert out.shape == imgs.shape and out_masks.shape == masks.shape
    assert set(out_masks.unique().tolist()) <= {0.0, 1.0}
    # The pattern really moved (identity would pass the alignment check trivially); resize keeps the geometry.
    if aug.name != "resize":
        assert not torch.allclose(centre_of_mass(out_masks[:, 0]), centre_of_mass(masks[:, 0]), atol=0.5)
    _assert_aligned(out, out_masks)


@pytest.mark.parametrize("aug", RANDOM, ids=lambda a: a.name)
@pytest.mark.parametrize("per_sample", [False, True])
def test_random_strength_moves_image_and_mask_together(aug, per_sample):
    torch.manual_seed(3)
    imgs, masks = square_batch(batch=4, size=96, k=2)
    for _ in range(3):
        out, out_masks = aug(imgs, masks, per_sample=per_sample)
        assert out.shape == imgs.shape and out_masks.shape == masks.shape
        assert torch.equal(out_masks[:, 0], out_masks[:, 1]), "every mask channel gets the same geometry"
        _assert_aligned(out, out_masks)


def test_rotate_90_is_an_exact_counter_clockwise_quarter_turn():
    imgs = torch.randn(2, 3, 32, 32)
    masks = (torch.rand(2, 1, 32, 32) > 0.5).float()
    out, out_masks = Rotate().apply(imgs, masks, 90)
    assert torch.allclose(out, torch.rot90(imgs, 1, dims=(-2, -1)), atol=1e-4)
    assert torch.equal(out_masks, torch.rot90(masks, 1, dims=(-2, -1)))


def test_hflip_mirrors_and_identity_is_a_no_op():
    imgs, masks = torch.randn(2, 3, 8, 12), torch.rand(2, 3, 8, 12).round()
    out, out_masks = HorizontalFlip()(imgs, masks)
    assert torch.equal(out, imgs.flip(-1)) and torch.equal(out_masks, masks.flip(-1))
    out, out_masks = Identity().apply(imgs, masks, None)
    assert out is imgs and torch.equal(out_masks, masks)


@pytest.mark.parametrize(("aug", "strength"), [(Perspective(), 0.0), (Crop(), 1.0), (Resize(), 1.0),
                                               (Rotate(), 0.0)], ids=lambda v: getattr(v, "name", str(v)))
def test_neutral_strength_returns_the_input(aug, strength):
    imgs, masks = torch.randn(2, 3, 24, 40), torch.rand(2, 2, 24, 40).round()
    out, out_masks = aug.apply(imgs, masks, strength)
    assert torch.allclose(out, imgs, atol=1e-4) and torch.equal(out_masks, masks)


def test_crop_zooms_on_the_centre():
    imgs, masks = torch.zeros(1, 3, 64, 64), torch.zeros(1, 1, 64, 64)
    imgs[..., 20:28, 34:42], masks[..., 20:28, 34:42] = SQUARE_VALUE, 1.0
    out, out_masks = Crop().apply(imgs, masks, 0.5)
    # The central 32x32 window (rows and cols 16..47) is enlarged twice: the square lands on rows 8..23, cols 36..51.
    expected = torch.zeros(64, 64)
    expected[8:24, 36:52] = 1.0
    assert torch.equal(out_masks[0, 0], expected)
    assert torch.equal(image_pattern(out)[0], expected)


def test_crop_resize_pad_pads_with_a_solid_colour_and_empty_masks():
    torch.manual_seed(0)
    imgs = torch.full((3, 3, 64, 64), SQUARE_VALUE)
    masks = torch.ones(3, 1, 64, 64)
    out, out_masks = CropResizePad()(imgs, masks)
    outside = out_masks[:, 0] == 0
    assert outside.any(dim=(1, 2)).all() and (out_masks.sum(dim=(1, 2, 3)) > 0).all()
    # Outside the pasted window every pixel of an image has that image's single canvas colour.
    for i in range(3):
        colours = out[i][:, outside[i]]  # (3, n)
        assert torch.allclose(colours, colours[:, :1].expand_as(colours))
        assert (colours.abs() < 3).all()
    assert not torch.allclose(out[0][:, outside[0]][:, 0], out[1][:, outside[1]][:, 0])


def test_per_sample_parameters_differ_across_the_batch():
    torch.manual_seed(1)
    imgs = torch.randn(1, 3, 32, 32).expand(4, -1, -1, -1).contiguous()
    masks = torch.ones(4, 1, 32, 32)
    for aug in (Rotate(), Resize(), Crop(), Perspective(), CropResizePad()):
        out, _ = aug(imgs, masks, per_sample=True)
        assert not torch.allclose(out[0], out[1]), aug.name
        shared, _ = aug(imgs, masks, per_sample=False)
        if aug.name != "crop_resize_pad":  # its canvas colour is per image in both modes
            assert torch.allclose(shared[0], shared[1]), aug.name


def test_geometric_ops_keep_gradients():
    imgs = torch.randn(2, 3, 32, 32, requires_grad=True)
    masks = torch.ones(2, 1, 32, 32)
    for aug in (Rotate(), Resize(), Crop(), Perspective(), CropResizePad(), HorizontalFlip()):
        out, _ = aug(imgs, masks, per_sample=True)
        (grad,) = torch.autograd.grad(out.sum(), imgs)
        assert grad.abs().sum() > 0, aug.name


def test_apply_without_strength_is_a_clear_error():
    with pytest.raises(ValueError, match="rotate.apply"):
        Rotate().apply(torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 8))


def test_rotate_reference_switches_draw_whole_degrees_and_sample_nearest():
    """`integer_angles` draws U{-10..10} whole degrees and `interpolation: nearest` copies pixels (the reference)."""
    torch.manual_seed(0)
    rotate = Rotate(integer_angles=True, interpolation="nearest")
    angles = rotate.sample_params(2000, 1, 8, 8)["degrees"]
    assert torch.equal(angles, angles.round()) and set(angles.int().tolist()) == set(range(-10, 11))
    real = Rotate().sample_params(50, 1, 8, 8)["degrees"]
    assert not torch.equal(real, real.round())                         # ours: real angles
    imgs = torch.rand(2, 3, 24, 24)
    out, _ = rotate.apply(imgs, torch.zeros(2, 1, 24, 24), 7)
    values = torch.cat([imgs.flatten(), torch.zeros(1)])
    assert torch.isin(out.flatten(), values).all()                     # every pixel copied (or the 0 fill)
    bilinear, _ = Rotate().apply(imgs, torch.zeros(2, 1, 24, 24), 7)
    assert not torch.isin(bilinear.flatten(), values).all()
    with pytest.raises(InvalidSetting, match="interpolation"):
        Rotate(interpolation="bicubic")


@pytest.mark.parametrize("height, width", [(256, 256), (64, 96), (33, 47)])
def test_crop_resize_pad_reference_eval_setting_has_the_references_truncated_sizes(height, width):
    """The reference validates with sizes (0.6, 0.8, 0.6, 0.8): resize to int(0.6 H) x int(0.8 W), then a window
    of int(0.6 h) x int(0.8 w) of that, at random positions on a random colour per image. Our strength 0.7."""
    torch.manual_seed(0)
    imgs, masks = torch.randn(3, 3, height, width), torch.ones(3, 1, height, width)
    aug = CropResizePad(eval_setting="reference")
    out, out_masks = aug.apply(imgs, masks, 0.7)
    rh, rw = int(0.6 * height), int(0.8 * width)
    window = out_masks[0, 0].nonzero()  # (n, 2) rows/cols of the pasted window
    size = (window.amax(0) - window.amin(0) + 1).tolist()
    assert size == [int(0.6 * rh), int(0.8 * rw)] and len(window) == size[0] * size[1]
    assert all(torch.equal(out_masks[i], out_masks[0]) for i in range(3))  # one window per batch, as the reference
    outside = out_masks[:, 0] == 0
    canvas = [out[i][:, outside[i]][:, 0] for i in range(3)]  # (3,) colour of each image's canvas
    assert not torch.allclose(canvas[0], canvas[1])  # a colour per image
    again, again_masks = aug.apply(imgs, masks, 0.7)
    assert torch.equal(again, out) and torch.equal(again_masks, out_masks)  # repeatable: evaluations agree
    centred, centred_masks = CropResizePad().apply(imgs, masks, 0.7)
    assert centred_masks[0, 0].sum() == round(round(0.7 * height) * 0.7) * round(round(0.7 * width) * 0.7)


def test_crop_resize_pad_eval_setting_is_checked():
    with pytest.raises(InvalidSetting, match="eval_setting: unknown setting 'paper'"):
        CropResizePad(eval_setting="paper")
    with pytest.raises(InvalidSetting, match="use a strength > 0.1"):
        CropResizePad(eval_setting="reference").apply(torch.zeros(1, 3, 8, 8), torch.ones(1, 1, 8, 8), 0.1)
