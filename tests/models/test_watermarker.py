"""Watermarker: blend formula, any-size embed, detect size, JND, nbits check, DDP-style dispatch, YAML building."""

from __future__ import annotations

import inspect

import pytest
import torch
from hydra_zen import builds, instantiate
from omegaconf import OmegaConf

import wam_pipe.models as models
from wam_pipe.core.errors import UserError
from wam_pipe.models import ConvEmbedder, ConvExtractor, Watermarker, jnd_1_3_blue


def small_watermarker(**kwargs) -> Watermarker:
    torch.manual_seed(0)
    return Watermarker(ConvEmbedder(nbits=8), ConvExtractor(nbits=8), img_size=32, **kwargs)


def test_blend_at_processing_size():
    wm = small_watermarker(scaling_w=0.5, scaling_i=0.9)
    imgs, msgs = torch.randn(2, 3, 32, 32), torch.randint(0, 2, (2, 8))
    delta = wm.embedder(imgs, msgs)
    torch.testing.assert_close(wm.embed(imgs, msgs), 0.9 * imgs + 0.5 * delta)


def test_embed_keeps_any_input_size_and_detect_returns_img_size():
    wm = small_watermarker()
    imgs = torch.randn(2, 3, 48, 80)
    imgs_w = wm.embed(imgs, torch.ones(2, 8))
    assert imgs_w.shape == (2, 3, 48, 80)
    # The change is the upsampled delta: bounded by scaling_w.
    assert (imgs_w - imgs).abs().max() <= wm.scaling_w + 1e-6
    assert wm.detect(imgs_w).shape == (2, 9, 32, 32)


def test_jnd_is_applied_and_saved():
    wm = small_watermarker(jnd=jnd_1_3_blue(), scaling_w=2.0)
    imgs = torch.randn(2, 3, 32, 32).clamp(-1.5, 1.5)
    msgs = torch.ones(2, 8)
    raw = imgs + 2.0 * wm.embedder(imgs, msgs)
    torch.testing.assert_close(wm.embed(imgs, msgs), wm.jnd(imgs, raw))
    assert "jnd.kernel_lum" in wm.state_dict()


def test_gradients_reach_both_networks_through_embed_and_detect():
    wm = small_watermarker()
    imgs, msgs = torch.randn(2, 3, 32, 32), torch.randint(0, 2, (2, 8)).float()
    logits = wm.detect(wm.embed(imgs, msgs))
    bits = msgs[:, :, None, None].expand_as(logits[:, 1:])
    torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 1:], bits).backward()
    assert wm.embedder.last_layer().grad.abs().sum() > 0
    assert wm.extractor.head.weight.grad.abs().sum() > 0


def test_nbits_mismatch_is_an_error_naming_both():
    with pytest.raises(ValueError, match=r"embedder.nbits=16 but extractor.nbits=32"):
        Watermarker(ConvEmbedder(nbits=16), ConvExtractor(nbits=32))
    with pytest.raises(UserError):
        Watermarker(ConvEmbedder(nbits=16), ConvExtractor(nbits=32))


@pytest.mark.parametrize("name", models.__all__)
def test_every_component_signature_builds_a_typed_schema(name):
    target = getattr(models, name)
    signature = inspect.signature(target)
    for param in signature.parameters.values():
        assert param.annotation is not inspect.Parameter.empty, f"{name}.{param.name} has no type annotation"
    schema = OmegaConf.structured(builds(target, populate_full_signature=True))
    assert schema._target_ == f"{target.__module__}.{target.__qualname__}"


def test_watermarker_instantiates_from_a_yaml_node():
    node = OmegaConf.create(
        """
        _target_: wam_pipe.models.Watermarker
        embedder: {_target_: wam_pipe.models.ConvEmbedder, nbits: 8, channels: 16}
        extractor: {_target_: wam_pipe.models.sam_tiny, nbits: 8, img_size: 64, depth: 2}
        jnd: {_target_: wam_pipe.models.jnd_1_3_blue}
        scaling_w: 2.0
        img_size: 64
        """
    )
    schema = OmegaConf.structured(builds(models.SamExtractor, populate_full_signature=True))
    merged = OmegaConf.merge(schema, {"upscale_stages": [4, 4], "global_blocks": [1]})
    assert list(merged.upscale_stages) == [4, 4]
    wm = instantiate(node)
    assert isinstance(wm, Watermarker) and wm.nbits == 8 and wm.scaling_w == 2.0
    assert wm.embed(torch.zeros(1, 3, 40, 40), torch.ones(1, 8)).shape == (1, 3, 40, 40)
