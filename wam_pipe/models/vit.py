"""ViTDet / SAM image encoder: patch embedding, windowed + global attention with decomposed relative position bias.

Tokens live as `(B, H', W', C)` grids (H' = H / patch) so that windowing and the 2-D relative position bias stay
simple reshapes. Attention runs through `F.scaled_dot_product_attention`; the relative position bias is passed as an
additive float `attn_mask`, which is exactly what the reference adds to `q * scale @ k^T` before the softmax.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from wam_pipe.models.layers import LayerNorm2d


def default_global_blocks(depth: int) -> list[int]:
    """The blocks with global attention: the last of every quarter of the depth ([2, 5, 8, 11] for depth 12)."""
    count = min(4, depth)
    return sorted({math.ceil((i + 1) * depth / count) - 1 for i in range(count)})


def relative_position_table(q_size: int, k_size: int, table: torch.Tensor) -> torch.Tensor:
    """Look up the bias vectors for every (query row, key row) pair along one axis.

    Args:
        q_size: query positions along the axis.
        k_size: key positions along the axis.
        table: `(L, head_dim)` learned embeddings of relative offsets; resized linearly when L != 2*max-1 (inputs
            larger or smaller than the size the table was built for).

    Returns:
        `(q_size, k_size, head_dim)`.
    """
    needed = 2 * max(q_size, k_size) - 1
    if table.shape[0] != needed:
        table = F.interpolate(table.t().unsqueeze(0), size=needed, mode="linear").squeeze(0).t()  # (needed, D)
    # Scale coordinates so that queries and keys of different lengths cover the same span.
    q_coords = torch.arange(q_size, device=table.device)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size, device=table.device)[None, :] * max(q_size / k_size, 1.0)
    offsets = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)  # (q, k), all >= 0
    return table[offsets.long()]


def decomposed_rel_pos_bias(
    q: torch.Tensor, table_h: torch.Tensor, table_w: torch.Tensor, grid: tuple[int, int]
) -> torch.Tensor:
    """Additive attention bias from decomposed (row + column) relative positions.

    Args:
        q: queries `(B, heads, H*W, D)` (unscaled, as the reference).
        table_h: `(2H-1, D)` row-offset embeddings.
        table_w: `(2W-1, D)` column-offset embeddings.
        grid: (H, W) of the token grid; queries and keys share it.

    Returns:
        `(B, heads, H*W, H*W)` bias.
    """
    b, heads, n, d = q.shape
    h, w = grid
    rel_h = relative_position_table(h, h, table_h).to(q.dtype)  # (H, Hk, D)
    rel_w = relative_position_table(w, w, table_w).to(q.dtype)  # (W, Wk, D)
    r_q = q.reshape(b, heads, h, w, d)
    bias_h = torch.einsum("bnhwd,hkd->bnhwk", r_q, rel_h)  # (B, heads, H, W, Hk)
    bias_w = torch.einsum("bnhwd,wkd->bnhwk", r_q, rel_w)  # (B, heads, H, W, Wk)
    bias = bias_h[..., :, None] + bias_w[..., None, :]  # (B, heads, H, W, Hk, Wk)
    return bias.reshape(b, heads, n, n)


class Attention(nn.Module):
    """Multi-head self-attention over a token grid, with optional decomposed relative position bias.

    Args:
        dim: token width.
        num_heads: attention heads.
        grid: (H, W) the relative position tables are sized for (the window, or the whole grid for global blocks).
        qkv_bias: bias in the qkv projection.
        use_rel_pos: learn the relative position bias (zero-initialised).
    """

    def __init__(
        self, dim: int, num_heads: int, grid: tuple[int, int], qkv_bias: bool = True, use_rel_pos: bool = True
    ):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = use_rel_pos
        if use_rel_pos:
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * grid[0] - 1, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * grid[1] - 1, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x `(B, H, W, C)` -> `(B, H, W, C)`."""
        b, h, w, c = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, H*W, D)
        bias = decomposed_rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, (h, w)) if self.use_rel_pos else None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (B, heads, H*W, D)
        out = out.transpose(1, 2).reshape(b, h, w, c)  # (B, H, W, C)
        return self.proj(out)


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """`(B, H, W, C)` -> `(B * nW, window, window, C)`, zero-padding H and W up to multiples of `window`."""
    b, h, w, c = x.shape
    pad_h, pad_w = -h % window, -w % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.reshape(b, hp // window, window, wp // window, window, c)
    return x.transpose(2, 3).reshape(-1, window, window, c), (hp, wp)


def window_unpartition(
    windows: torch.Tensor, window: int, padded: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Inverse of `window_partition`: `(B * nW, window, window, C)` -> `(B, H, W, C)` with the padding cut off."""
    hp, wp = padded
    c = windows.shape[-1]
    b = windows.shape[0] // ((hp // window) * (wp // window))
    x = windows.reshape(b, hp // window, wp // window, window, window, c)
    x = x.transpose(2, 3).reshape(b, hp, wp, c)  # (B, Hp, Wp, C)
    return x[:, : size[0], : size[1]]


class Block(nn.Module):
    """Pre-LN transformer block; `window > 0` attends within non-overlapping windows, `window == 0` globally.

    Args:
        dim: token width.
        num_heads: attention heads.
        grid: token grid (H, W) at the model's `img_size` (sizes the global blocks' position tables).
        window: window side in tokens, 0 for global attention.
        mlp_ratio: MLP hidden width / dim.
    """

    def __init__(self, dim: int, num_heads: int, grid: tuple[int, int], window: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)  # torch's default, as the reference (SAM's 1e-6 changes logits ~1e-3)
        self.attn = Attention(dim, num_heads, (window, window) if window > 0 else grid)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x `(B, H, W, C)` -> `(B, H, W, C)`."""
        h = self.norm1(x)
        if self.window > 0:
            size = (h.shape[1], h.shape[2])
            windows, padded = window_partition(h, self.window)
            h = window_unpartition(self.attn(windows), self.window, padded, size)
        else:
            h = self.attn(h)
        x = x + h
        return x + self.mlp(self.norm2(x))


class ImageEncoderViT(nn.Module):
    """SAM's ViT image encoder: `(B, 3, H, W)` -> `(B, out_channels, H / patch, W / patch)`.

    Args:
        img_size: input side the position embedding and global position tables are built for.
        patch_size: patch side (the conv stride).
        embed_dim: token width.
        depth: transformer blocks.
        num_heads: attention heads.
        mlp_ratio: MLP width / embed_dim.
        window_size: window side (tokens) of the non-global blocks.
        global_blocks: indices of blocks with global attention.
        out_channels: neck output channels.
    """

    def __init__(
        self,
        img_size: int,
        patch_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        window_size: int,
        global_blocks: Sequence[int],
        out_channels: int,
    ):
        super().__init__()
        grid = (img_size // patch_size, img_size // patch_size)
        self.patch_embed = nn.Conv2d(3, embed_dim, patch_size, stride=patch_size)
        # Learned absolute position embedding, zero-initialised as the reference.
        self.pos_embed = nn.Parameter(torch.zeros(1, grid[0], grid[1], embed_dim))
        globals_ = set(global_blocks)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, grid, 0 if i in globals_ else window_size, mlp_ratio) for i in range(depth)
        )
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dim, out_channels, 1, bias=False),
            LayerNorm2d(out_channels),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            LayerNorm2d(out_channels),
        )

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        """`(1, h, w, C)`: the learned embedding, bicubically resized when the token grid differs from img_size's."""
        pos = self.pos_embed
        if pos.shape[1:3] == (h, w):
            return pos
        pos = F.interpolate(pos.permute(0, 3, 1, 2), size=(h, w), mode="bicubic", align_corners=False)
        return pos.permute(0, 2, 3, 1)  # (1, h, w, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).permute(0, 2, 3, 1)  # (B, H', W', C)
        x = x + self.position_embedding(x.shape[1], x.shape[2])
        for block in self.blocks:
            x = block(x)
        return self.neck(x.permute(0, 3, 1, 2))  # (B, out, H', W')
