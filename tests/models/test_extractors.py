"""Extractors: parameter counts, shapes at several sizes, global/windowed layout, bad arguments."""

from __future__ import annotations

import pytest
import torch

from wam_pipe.core.errors import UserError
from wam_pipe.models import ConvExtractor, SamExtractor, sam_base, sam_small, sam_tiny


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("preset", "expected", "vit", "decoder"),
    [
        (sam_tiny, 6.03e6, 5.94e6, 0.10e6),
        (sam_small, 23.58e6, 23.19e6, 0.39e6),
        (sam_base, 93.31e6, 91.77e6, 1.54e6),
    ],
)
def test_sam_parameter_counts_match_reference(preset, expected, vit, decoder):
    model = preset(nbits=32, img_size=256)
    assert n_params(model) == pytest.approx(expected, rel=0.01)
    # Per-part counts are rounded to 0.01M in the reference facts (some by subtraction): allow 0.01M.
    assert n_params(model.image_encoder) == pytest.approx(vit, abs=1e4)
    assert n_params(model.pixel_decoder) == pytest.approx(decoder, abs=1e4)


@pytest.mark.parametrize(("preset", "size"), [(sam_tiny, 64), (sam_small, 32)])
def test_sam_forward_backward_small(preset, size):
    torch.manual_seed(0)
    model = preset(nbits=8, img_size=size)
    imgs = torch.randn(2, 3, size, size)
    logits = model(imgs)
    assert logits.shape == (2, 9, size, size)
    assert torch.isfinite(logits).all()
    logits.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.slow
def test_sam_base_forward_backward_at_32px():
    model = sam_base(nbits=4, img_size=32)
    logits = model(torch.randn(1, 3, 32, 32))
    assert logits.shape == (1, 5, 32, 32)
    logits.mean().backward()
    assert model.pixel_decoder.head.weight.grad is not None


def test_sam_global_blocks_follow_depth():
    def global_blocks(model: SamExtractor) -> list[int]:
        return [i for i, block in enumerate(model.image_encoder.blocks) if block.window == 0]

    assert global_blocks(sam_tiny(img_size=64)) == [2, 5, 8, 11]
    assert global_blocks(sam_tiny(img_size=64, depth=6)) == [1, 2, 4, 5]
    custom = SamExtractor(nbits=4, img_size=64, embed_dim=32, num_heads=2, depth=3, global_blocks=[0])
    assert global_blocks(custom) == [0]


def test_sam_other_input_sizes_interpolate_positions():
    torch.manual_seed(0)
    model = SamExtractor(nbits=4, img_size=64, embed_dim=32, depth=3, num_heads=2, window_size=2)
    with torch.no_grad():  # non-zero position tables, so that interpolation really runs
        model.image_encoder.pos_embed.normal_()
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    for size in (48, 96, 100):  # smaller, larger, and not a multiple of the patch
        logits = model(torch.randn(1, 3, size, size))
        assert logits.shape == (1, 5, size, size)
        assert torch.isfinite(logits).all()


def test_conv_extractor_shapes_and_size():
    torch.manual_seed(0)
    model = ConvExtractor(nbits=16, channels=32)
    assert n_params(model) < 1_000_000
    for size in (64, 128, 72):
        logits = model(torch.randn(2, 3, size, size))
        assert logits.shape == (2, 17, size, size)
    logits.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_bad_arguments_are_user_errors():
    with pytest.raises(UserError, match="img_size=100"):
        sam_tiny(img_size=100)
    with pytest.raises(ValueError, match="upscale_stages"):
        SamExtractor(img_size=64, embed_dim=32, num_heads=2, depth=1, upscale_stages=[2, 2])
    with pytest.raises(ValueError, match="global_blocks"):
        SamExtractor(img_size=64, embed_dim=32, num_heads=2, depth=2, global_blocks=[5])
