"""Embedders: parameter counts, shapes, value range, message processing, gradients, bad arguments."""

from __future__ import annotations

import pytest
import torch

from wam_pipe.core.errors import UserError
from wam_pipe.models import ConvEmbedder, VAEEmbedder, vae_big, vae_small
from wam_pipe.models.message import MessageProcessor


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("preset", "expected", "encoder", "decoder"),
    [(vae_small, 1.11e6, 0.440e6, 0.662e6), (vae_big, 5.64e6, 2.30e6, 3.33e6)],
)
def test_vae_parameter_counts_match_reference(preset, expected, encoder, decoder):
    model = preset(nbits=32)
    assert n_params(model) == pytest.approx(expected, rel=0.01)
    assert n_params(model.encoder) == pytest.approx(encoder, abs=5e3)
    assert n_params(model.decoder) == pytest.approx(decoder, abs=5e3)
    assert n_params(model.msg_processor) == 2 * 32 * 64  # Embedding(2 * nbits, hidden = 2 * nbits)


@pytest.mark.parametrize("preset", [vae_small, vae_big])
def test_vae_forward_backward_small(preset):
    torch.manual_seed(0)
    model = preset(nbits=8)
    imgs = torch.randn(2, 3, 32, 32)
    msgs = torch.randint(0, 2, (2, 8))
    delta = model(imgs, msgs)
    assert delta.shape == (2, 3, 32, 32)
    assert delta.abs().max() <= 1.0
    delta.square().mean().backward()
    assert model.last_layer().grad is not None and model.last_layer().grad.abs().sum() > 0
    assert model.msg_processor.embedding.weight.grad.abs().sum() > 0


def test_vae_latent_is_one_eighth_and_odd_sizes_keep_shape():
    model = vae_small(nbits=4)
    assert model.encoder(torch.zeros(1, 3, 64, 64)).shape == (1, 4, 8, 8)
    delta = model(torch.zeros(1, 3, 60, 44), torch.zeros(1, 4))
    assert delta.shape == (1, 3, 60, 44)


def test_message_processor_sums_one_row_per_bit():
    proc = MessageProcessor(nbits=3, hidden=5)
    msgs = torch.tensor([[1, 0, 1]])
    rows = proc.embedding.weight
    expected = rows[0 * 2 + 1] + rows[1 * 2 + 0] + rows[2 * 2 + 1]
    torch.testing.assert_close(proc(msgs)[0], expected)
    torch.testing.assert_close(proc(msgs.float()), proc(msgs))  # float and integer messages agree
    assert proc.broadcast(msgs, 4, 6).shape == (1, 5, 4, 6)


def test_embedders_depend_on_the_message():
    torch.manual_seed(0)
    imgs = torch.randn(2, 3, 16, 16)
    for model in (vae_small(nbits=8), ConvEmbedder(nbits=8)):
        a = model(imgs, torch.zeros(2, 8))
        b = model(imgs, torch.ones(2, 8))
        assert (a - b).abs().max() > 1e-3


def test_conv_embedder_is_small_and_bounded():
    torch.manual_seed(0)
    model = ConvEmbedder(nbits=16, channels=32)
    assert n_params(model) < 1_000_000
    imgs = torch.randn(4, 3, 64, 64) * 3
    delta = model(imgs, torch.randint(0, 2, (4, 16)).float())
    assert delta.shape == (4, 3, 64, 64)
    assert delta.abs().max() <= 1.0
    delta.sum().backward()
    assert model.last_layer().grad.abs().sum() > 0


def test_conv_embedder_texture_repeats_with_the_tile():
    model = ConvEmbedder(nbits=4, tile=4)
    tex = model.texture(torch.tensor([[0, 1, 1, 0]]), 10, 9)  # sizes not multiples of the tile
    assert tex.shape == (1, 3, 10, 9)
    torch.testing.assert_close(tex[..., 4:8, 4:8], tex[..., 0:4, 0:4])


def test_conv_embedder_eval_matches_train_mode():
    # GroupNorm only: no running statistics, so the two modes compute the same function.
    model = ConvEmbedder(nbits=8)
    imgs, msgs = torch.randn(2, 3, 32, 32), torch.ones(2, 8)
    out_train = model.train()(imgs, msgs)
    torch.testing.assert_close(model.eval()(imgs, msgs), out_train)


def test_bad_arguments_are_user_errors():
    with pytest.raises(UserError, match="channels=48"):
        VAEEmbedder(channels=48)
    with pytest.raises(ValueError, match="nbits=0"):
        ConvEmbedder(nbits=0)
