"""Full-resolution embed and detect: sizes, splicing, and the presence rule on crafted extractor outputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wam_pipe.inference.detect import (DEFAULT_MIN_FRACTION, detect_image, embed_image, largest_region_fraction,
                                       region_mean_logits)
from wam_pipe.models import ConvEmbedder, ConvExtractor, Watermarker


def tiny() -> Watermarker:
    torch.manual_seed(0)
    return Watermarker(ConvEmbedder(nbits=4, channels=4, depth=1), ConvExtractor(nbits=4, channels=4, depth=0),
                       scaling_w=0.3, img_size=32).eval()


class CraftedExtractor(nn.Module):
    """Returns fixed logits `(1, 1 + nbits, s, s)` whatever the image."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = nn.Parameter(logits, requires_grad=False)

    def detect(self, imgs: torch.Tensor) -> torch.Tensor:
        return self.logits[None].expand(imgs.shape[0], -1, -1, -1)


def test_embed_keeps_the_full_resolution_and_only_touches_the_mask():
    image = torch.randint(0, 256, (3, 75, 101), dtype=torch.uint8)
    mask = torch.zeros(1, 75, 101)
    mask[:, 10:40, 20:60] = 1
    result = embed_image(tiny(), image, torch.tensor([1.0, 0.0, 1.0, 1.0]), mask)
    assert result.image.shape == image.shape and result.image.dtype == torch.uint8
    outside = mask[0] == 0
    assert torch.equal(result.image[:, outside], image[:, outside])
    assert not torch.equal(result.image[:, ~outside], image[:, ~outside])
    assert 10 < result.psnr < 100


def test_detect_decodes_the_predicted_region_and_upsamples_the_mask():
    logits = torch.full((5, 8, 8), -3.0)
    logits[0, :4, :4] = 4.0                                            # a quarter of the image is watermarked
    logits[1:, :4, :4] = torch.tensor([2.0, -1.0, 0.5, -3.0])[:, None, None]
    logits[1:, 4:, 4:] = 9.0                                           # outside the region: ignored
    found = detect_image(CraftedExtractor(logits), torch.zeros(3, 40, 60, dtype=torch.uint8))
    assert found.present and found.fraction == pytest.approx(0.25, abs=0.03) and found.region == 0.25
    assert found.mask.shape == (40, 60) and found.mask[:15, :25].all() and not found.mask[25:, 35:].any()
    assert found.message.tolist() == [1.0, 0.0, 1.0, 0.0]
    assert found.confidence.tolist() == pytest.approx(torch.sigmoid(torch.tensor([2.0, 1.0, 0.5, 3.0])).tolist())


def test_scattered_false_positives_do_not_make_a_watermark():
    logits = torch.full((5, 100, 100), -3.0)
    logits[0, ::4, ::4] = 3.0  # isolated pixels: 6.25% of the image, the largest region is one pixel
    image = torch.zeros(3, 100, 100, dtype=torch.uint8)
    found = detect_image(CraftedExtractor(logits), image)
    assert found.fraction == pytest.approx(0.0625, abs=0.01) and found.region == pytest.approx(1e-4)
    assert not found.present
    assert detect_image(CraftedExtractor(logits), image, min_fraction=1e-4).present  # --min-fraction is the bar


def test_one_region_above_the_threshold_is_a_watermark():
    logits = torch.full((5, 100, 100), -3.0)
    logits[0, 10:40, 10:40] = 3.0  # one block: 9% of the image
    image = torch.zeros(3, 100, 100, dtype=torch.uint8)
    found = detect_image(CraftedExtractor(logits), image)
    assert found.region == pytest.approx(0.09) and found.region >= DEFAULT_MIN_FRACTION and found.present
    assert not detect_image(CraftedExtractor(logits), image, min_fraction=0.1).present


def test_largest_region_counts_diagonal_neighbours():
    mask = torch.zeros(10, 10, dtype=torch.bool)
    mask[range(5), range(5)] = True  # a diagonal line of 5 pixels is one 8-connected region
    mask[8:10, 0:3] = True  # a separate block of 6
    assert largest_region_fraction(mask) == pytest.approx(0.06)
    mask[7, 3] = True  # touches the block diagonally: 7
    assert largest_region_fraction(mask) == pytest.approx(0.07)
    assert largest_region_fraction(torch.zeros(4, 4, dtype=torch.bool)) == 0.0


def test_empty_region_averages_every_pixel():
    bits = torch.tensor([[[1.0, 3.0]], [[-2.0, 0.0]]])  # (2, 1, 2)
    assert region_mean_logits(bits, torch.zeros(1, 2)).tolist() == [2.0, -1.0]
    assert region_mean_logits(bits, torch.tensor([[1.0, 0.0]])).tolist() == [1.0, -2.0]
