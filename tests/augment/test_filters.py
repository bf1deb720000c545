"""Gaussian blur and median filter: exact against independent implementations, batched per image, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from scipy import ndimage

from wam_pipe.augment import GaussianBlur, MedianFilter
from wam_pipe.augment import filters as filters_module
from wam_pipe.augment._common import InvalidSetting
from wam_pipe.core.imaging import from_unit, to_unit


def _pixels(batch: int = 2, height: int = 32, width: int = 40) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(batch, 3, height, width)


def _sigma(k: int) -> float:
    return 0.3 * ((k - 1) / 2 - 1) + 0.8


@pytest.mark.parametrize("k", [3, 5, 9, 17])
def test_gaussian_blur_matches_torchvision(k):
    pixels = _pixels()
    masks = torch.ones(2, 1, 32, 40)
    out, out_masks = GaussianBlur().apply(from_unit(pixels), masks, k)
    expected = TF.gaussian_blur(pixels, [k, k], [_sigma(k), _sigma(k)])
    assert torch.allclose(to_unit(out), expected, atol=1e-5)
    assert out_masks is masks


def test_gaussian_blur_per_image_kernels_in_one_batch():
    pixels = _pixels(batch=4)
    sizes = torch.tensor([3, 5, 9, 17])
    out, _ = GaussianBlur().transform(from_unit(pixels), torch.zeros(4, 1, 32, 40), {"size": sizes})
    for i, k in enumerate(sizes.tolist()):
        expected = TF.gaussian_blur(pixels[i], [k, k], [_sigma(k), _sigma(k)])
        assert torch.allclose(to_unit(out[i]), expected, atol=1e-5), k


@pytest.mark.parametrize("k", [3, 5, 9])
def test_median_filter_matches_scipy(k):
    pixels = _pixels(batch=2, height=20, width=28)
    out, _ = MedianFilter().apply(from_unit(pixels), torch.zeros(2, 1, 20, 28), k)
    # torch's "reflect" padding (edge not repeated) is scipy's "mirror".
    expected = ndimage.median_filter(pixels.numpy(), size=(1, 1, k, k), mode="mirror")
    assert np.allclose(to_unit(out).numpy(), expected, atol=1e-5)


def test_median_filter_strips_give_the_same_result(monkeypatch):
    pixels = _pixels(batch=2, height=33, width=20)
    whole = filters_module.median_filter(pixels, 5)
    monkeypatch.setattr(filters_module, "_MEDIAN_BLOCK_ELEMENTS", 2 * 3 * 20 * 25 * 2)  # 2 rows per strip
    assert torch.equal(filters_module.median_filter(pixels, 5), whole)


def test_median_filter_removes_salt_noise():
    pixels = torch.full((1, 3, 16, 16), 0.5)
    pixels[..., 5, 7] = 1.0
    pixels[..., 10, 2] = 0.0
    out, _ = MedianFilter().apply(from_unit(pixels), torch.zeros(1, 1, 16, 16), 3)
    assert torch.allclose(to_unit(out), torch.full_like(pixels, 0.5), atol=1e-5)


def test_median_gradient_passes_straight_through():
    x = from_unit(_pixels()).requires_grad_(True)
    out, _ = MedianFilter()(x, torch.zeros(2, 1, 32, 40), per_sample=True)
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.equal(grad, torch.ones_like(x))


def test_kernel_sizes_drawn_are_odd_and_in_range():
    torch.manual_seed(0)
    sizes = GaussianBlur(kernel_size=[3, 17]).sample_params(500, 500, 8, 8)["size"]
    assert set(sizes.tolist()) == {3, 5, 7, 9, 11, 13, 15, 17}
    sizes = MedianFilter(kernel_size=[2, 8]).sample_params(200, 200, 8, 8)["size"]
    assert set(sizes.tolist()) == {3, 5, 7}
    with pytest.raises(ValueError, match="median_filter.kernel_size"):
        MedianFilter(kernel_size=[4, 4])
    with pytest.raises(ValueError, match="odd"):
        GaussianBlur().apply(torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 8), 4)


def test_blur_works_on_images_smaller_than_the_kernel():
    tiny = from_unit(torch.rand(2, 3, 6, 6))
    out, _ = GaussianBlur().apply(tiny, torch.zeros(2, 1, 6, 6), 17)
    assert out.shape == tiny.shape and torch.isfinite(out).all()
    out, _ = MedianFilter().apply(tiny, torch.zeros(2, 1, 6, 6), 17)
    assert out.shape == tiny.shape and torch.isfinite(out).all()


def _reference_median(image: np.ndarray, k: int) -> np.ndarray:
    """The reference's median filter, written out: zero padding, then per window the median of its row medians."""
    pad = k // 2
    padded = np.pad(image, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros_like(image)
    for y in range(image.shape[2]):
        for x in range(image.shape[3]):
            window = padded[:, :, y : y + k, x : x + k]                       # (B, C, k rows, k columns)
            out[:, :, y, x] = np.median(np.median(window, axis=3), axis=2)
    return out


@pytest.mark.parametrize("k", [3, 5])
def test_median_filter_reference_algorithm_is_the_median_of_row_medians_with_zero_padding(k):
    torch.manual_seed(0)
    pixels = torch.rand(2, 3, 12, 10, dtype=torch.float64)
    out, _ = MedianFilter(algorithm="reference").apply(from_unit(pixels), torch.zeros(2, 1, 12, 10), k)
    np.testing.assert_allclose(to_unit(out).numpy(), _reference_median(pixels.numpy(), k), atol=1e-6)
    exact, _ = MedianFilter().apply(from_unit(pixels), torch.zeros(2, 1, 12, 10), k)
    assert not torch.allclose(exact, out)                               # not the same filter


def test_reference_kernel_draw_makes_even_sizes_odd_by_adding_one():
    """`kernel_draw: reference`: U{3..17} with even +1, so 3 is half as likely as each other odd size."""
    torch.manual_seed(0)
    sizes = GaussianBlur(kernel_draw="reference").sample_params(15000, 1, 8, 8)["size"]
    counts = {k: int((sizes == k).sum()) for k in range(3, 18, 2)}
    assert set(sizes.tolist()) == set(counts) and all(c % 2 for c in counts)
    assert 0.055 < counts[3] / 15000 < 0.078                            # 1/15
    assert all(0.12 < counts[k] / 15000 < 0.147 for k in range(5, 18, 2))  # 2/15
    odd = GaussianBlur().sample_params(15000, 1, 8, 8)["size"]
    assert 0.115 < float((odd == 3).float().mean()) < 0.135               # ours: 1/8 each
    assert set(MedianFilter(kernel_draw="reference").sample_params(500, 1, 8, 8)["size"].tolist()) == {3, 5, 7}
    with pytest.raises(InvalidSetting, match="kernel_draw"):
        MedianFilter(kernel_draw="even")
