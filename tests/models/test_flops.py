"""FLOP counting: exact on a hand-countable model, linear in batch, attention counted on CPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from wam_pipe.models import Watermarker, count_training_flops, sam_base, sam_tiny, vae_small
from wam_pipe.models.flops import count_forward_flops


class PointwiseEmbedder(nn.Module):
    def __init__(self, nbits: int):
        super().__init__()
        self.nbits = nbits
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, imgs: torch.Tensor, msgs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(imgs))


class PointwiseExtractor(nn.Module):
    def __init__(self, nbits: int):
        super().__init__()
        self.nbits = nbits
        self.conv = nn.Conv2d(3, 1 + nbits, 1)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        return self.conv(imgs)


def test_hand_counted_model():
    nbits, size = 4, 16
    wm = Watermarker(PointwiseEmbedder(nbits), PointwiseExtractor(nbits), img_size=size)
    pixels = size * size
    forward = 2 * 3 * 3 * pixels + 2 * 3 * (1 + nbits) * pixels  # 2 FLOPs per multiply-add
    assert count_training_flops(wm, size) == 3 * forward
    assert count_training_flops(wm, size, batch=4) == 4 * 3 * forward


def test_attention_is_counted_on_cpu():
    wm = Watermarker(vae_small(nbits=4), sam_tiny(nbits=4, img_size=64, depth=2), img_size=64)
    plain = FlopCounterMode(display=False)
    with torch.no_grad(), plain:
        wm.embedder(torch.zeros(1, 3, 64, 64), torch.zeros(1, 4))
        wm.extractor(torch.zeros(1, 3, 64, 64))
    assert count_forward_flops(wm, 64) > plain.get_total_flops()


@pytest.mark.slow
def test_reference_pair_at_256():
    flops = count_training_flops(Watermarker(vae_small(), sam_base()), 256)
    assert 2.2e11 < flops < 3.0e11  # ~2.7e11: 3 x (20 GFLOP embedder + 70 GFLOP extractor)
