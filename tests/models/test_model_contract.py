"""One contract for every registered model (`@register_model`): the `Embedder` / `Extractor` protocols' shapes,
dtype and nbits. Parametrized over the registries, so a new model is covered without editing this file."""

from __future__ import annotations

import inspect

import pytest
import torch

from wam_pipe.models import EMBEDDERS, EXTRACTORS, Embedder, Extractor, Watermarker
from wam_pipe.models.embedders import ConvEmbedder, vae_big, vae_small
from wam_pipe.models.extractors import ConvExtractor, sam_base, sam_small, sam_tiny

NBITS, SIZE = 8, 32


def _build(builder, **extra):
    accepted = inspect.signature(builder).parameters
    return builder(nbits=NBITS, **{k: v for k, v in extra.items() if k in accepted})


def test_the_shipped_models_are_registered():
    assert {vae_small, vae_big, ConvEmbedder} <= set(EMBEDDERS.values())
    assert {sam_tiny, sam_small, sam_base, ConvExtractor} <= set(EXTRACTORS.values())


@pytest.mark.parametrize("name", sorted(EMBEDDERS))
def test_embedder_contract(name):
    torch.manual_seed(0)
    model = _build(EMBEDDERS[name]).eval()
    assert isinstance(model, Embedder) and model.nbits == NBITS
    imgs, msgs = torch.randn(2, 3, SIZE, SIZE), torch.randint(0, 2, (2, NBITS)).float()
    delta = model(imgs, msgs)
    assert delta.shape == (2, 3, SIZE, SIZE) and delta.dtype == imgs.dtype and torch.isfinite(delta).all()
    assert not torch.equal(delta, model(imgs, 1 - msgs)), "the delta must depend on the message"


@pytest.mark.parametrize("name", sorted(EXTRACTORS))
def test_extractor_contract(name):
    torch.manual_seed(0)
    model = _build(EXTRACTORS[name], img_size=SIZE, depth=2).eval()
    assert isinstance(model, Extractor) and model.nbits == NBITS
    imgs = torch.randn(2, 3, SIZE, SIZE)
    logits = model(imgs)
    assert logits.shape == (2, 1 + NBITS, SIZE, SIZE) and logits.dtype == imgs.dtype and torch.isfinite(logits).all()


@pytest.mark.parametrize("embedder", sorted(EMBEDDERS))
def test_every_embedder_pairs_with_an_extractor_in_a_watermarker(embedder):
    model = Watermarker(_build(EMBEDDERS[embedder]), _build(ConvExtractor), img_size=SIZE)
    imgs = torch.randn(1, 3, SIZE, SIZE)
    assert model.detect(model.embed(imgs, torch.ones(1, NBITS))).shape == (1, 1 + NBITS, SIZE, SIZE)
