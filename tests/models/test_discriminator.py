"""PatchGAN discriminator: reference parameter count, patch grid size, init."""

from __future__ import annotations

import torch

from wam_pipe.models import PatchDiscriminator


def test_reference_parameter_count_and_patch_grid():
    disc = PatchDiscriminator(in_channels=3, ndf=32, n_layers=2)
    assert sum(p.numel() for p in disc.parameters()) == 168_033
    logits = disc(torch.randn(1, 3, 256, 256))
    assert logits.shape == (1, 1, 62, 62)


def test_init_and_backward():
    torch.manual_seed(0)
    disc = PatchDiscriminator(ndf=16, n_layers=3)
    first = disc.net[0]
    assert abs(first.weight.std().item() - 0.02) < 0.005
    assert first.bias.abs().max() == 0
    out = disc(torch.randn(2, 3, 64, 64))
    assert out.shape[:2] == (2, 1)
    out.mean().backward()
    assert all(p.grad is not None for p in disc.parameters())
