"""ViT internals: SDPA attention equals explicit softmax attention with the same bias; windows; position tables."""

from __future__ import annotations

import torch

from wam_pipe.models.vit import (
    Attention,
    decomposed_rel_pos_bias,
    relative_position_table,
    window_partition,
    window_unpartition,
)


def explicit_attention(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """The reference computation: softmax(q * scale @ k^T + rel_h + rel_w) @ v, then the output projection."""
    b, h, w, c = x.shape
    heads, d = attn.num_heads, c // attn.num_heads
    qkv = attn.qkv(x).reshape(b, h * w, 3, heads, d).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]  # (B, heads, N, D)
    scores = (q * d**-0.5) @ k.transpose(-2, -1)  # (B, heads, N, N)
    # Bias written out element by element from the tables, independent of the vectorised helper.
    table_h = relative_position_table(h, h, attn.rel_pos_h)  # (H, H, D)
    table_w = relative_position_table(w, w, attn.rel_pos_w)  # (W, W, D)
    bias = torch.zeros_like(scores)
    for qi in range(h * w):
        for ki in range(h * w):
            qy, qx, ky, kx = qi // w, qi % w, ki // w, ki % w
            bias[:, :, qi, ki] = (q[:, :, qi] * (table_h[qy, ky] + table_w[qx, kx])).sum(-1)
    out = torch.softmax(scores + bias, dim=-1) @ v  # (B, heads, N, D)
    return attn.proj(out.transpose(1, 2).reshape(b, h, w, c))


def test_sdpa_attention_matches_explicit_softmax_with_bias():
    torch.manual_seed(0)
    attn = Attention(dim=16, num_heads=2, grid=(3, 4))
    with torch.no_grad():  # the tables are zero-initialised; make the bias matter
        attn.rel_pos_h.normal_()
        attn.rel_pos_w.normal_()
    x = torch.randn(2, 3, 4, 16)
    torch.testing.assert_close(attn(x), explicit_attention(attn, x), rtol=1e-4, atol=1e-5)


def test_relative_position_table_indexes_by_offset():
    table = torch.arange(7.0)[:, None].repeat(1, 2)  # (2 * 4 - 1, D): row r holds value r
    looked_up = relative_position_table(4, 4, table)[..., 0]  # (4, 4)
    expected = torch.tensor([[q - k + 3 for k in range(4)] for q in range(4)], dtype=torch.float32)
    torch.testing.assert_close(looked_up, expected)
    # A table built for another size is resized to the needed length instead of failing.
    assert relative_position_table(6, 6, table).shape == (6, 6, 2)


def test_zero_tables_give_zero_bias():
    q = torch.randn(1, 2, 12, 4)
    bias = decomposed_rel_pos_bias(q, torch.zeros(5, 4), torch.zeros(7, 4), (3, 4))
    assert bias.shape == (1, 2, 12, 12)
    assert bias.abs().max() == 0


def test_window_partition_round_trip_with_padding():
    x = torch.randn(2, 5, 7, 3)
    windows, padded = window_partition(x, 4)
    assert windows.shape == (2 * 2 * 2, 4, 4, 3)
    assert padded == (8, 8)
    torch.testing.assert_close(window_unpartition(windows, 4, padded, (5, 7)), x)
    # The first window holds the top-left 4 x 4 tokens.
    torch.testing.assert_close(windows[0], x[0, :4, :4])
