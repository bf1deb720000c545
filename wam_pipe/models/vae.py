"""The VAE-style encoder/decoder of the reference embedder (an LDM autoencoder without KL sampling).

The encoder maps an image to a 4-channel latent at 1/2**(levels-1) resolution (1/8 for 4 levels); the decoder maps
the latent (plus the message channels) back to a 3-channel map. Both have a "mid" stage with a full self-attention
block between two resnet blocks. Norms are GroupNorm(32, eps=1e-6), activations swish, as in the reference.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

NORM_GROUPS = 32


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(NORM_GROUPS, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    """GroupNorm -> swish -> conv3x3, twice, plus a residual (1x1 conv shortcut when the width changes)."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = _norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.shortcut(x) + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over all positions of a feature map, with a residual connection."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        normed = self.norm(x)

        def tokens(conv: nn.Conv2d) -> torch.Tensor:
            return conv(normed).flatten(2).transpose(1, 2).unsqueeze(1)  # (B, 1, H*W, C)

        out = F.scaled_dot_product_attention(tokens(self.q), tokens(self.k), tokens(self.v))  # (B, 1, H*W, C)
        out = out.squeeze(1).transpose(1, 2).reshape(b, c, h, w)  # (B, C, H, W)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Stride-2 conv3x3 with the reference's asymmetric padding (one pixel right and bottom)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour x2 then conv3x3."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class MidBlock(nn.Sequential):
    """ResnetBlock -> AttentionBlock -> ResnetBlock at constant width (the bottleneck of encoder and decoder)."""

    def __init__(self, channels: int, dropout: float):
        super().__init__(
            ResnetBlock(channels, channels, dropout), AttentionBlock(channels), ResnetBlock(channels, channels, dropout)
        )


class VAEEncoder(nn.Module):
    """Image `(B, in_channels, H, W)` -> latent `(B, z_channels, H / 2**(L-1), W / 2**(L-1))`, L = len(channel_mult).

    Args:
        channels: base width; level i has `channels * channel_mult[i]` channels.
        channel_mult: width multipliers, one per level.
        num_res_blocks: resnet blocks per level.
        z_channels: latent channels.
        in_channels: image channels.
        dropout: dropout inside resnet blocks.
    """

    def __init__(
        self,
        channels: int,
        channel_mult: Sequence[int],
        num_res_blocks: int,
        z_channels: int,
        in_channels: int = 3,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1)
        layers: list[nn.Module] = []
        width = channels
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers.append(ResnetBlock(width, channels * mult, dropout))
                width = channels * mult
            if level != len(channel_mult) - 1:
                layers.append(Downsample(width))
        self.down = nn.Sequential(*layers)
        self.mid = MidBlock(width, dropout)
        self.norm_out = _norm(width)
        self.conv_out = nn.Conv2d(width, z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.down(self.conv_in(x)))
        return self.conv_out(F.silu(self.norm_out(h)))


class VAEDecoder(nn.Module):
    """Latent `(B, z_channels, h, w)` -> `(B, out_channels, h * 2**(L-1), w * 2**(L-1))`, tanh-bounded.

    Args:
        channels: base width (as the encoder).
        channel_mult: width multipliers, one per level (walked from the deepest level up).
        num_res_blocks: the decoder has `num_res_blocks + 1` resnet blocks per level, as the reference.
        z_channels: input channels (latent + message channels for the embedder).
        out_channels: output channels.
        dropout: dropout inside resnet blocks.
        tanh_out: bound the output to [-1, 1].
    """

    def __init__(
        self,
        channels: int,
        channel_mult: Sequence[int],
        num_res_blocks: int,
        z_channels: int,
        out_channels: int = 3,
        dropout: float = 0.0,
        tanh_out: bool = True,
    ):
        super().__init__()
        width = channels * channel_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, width, 3, padding=1)
        self.mid = MidBlock(width, dropout)
        layers: list[nn.Module] = []
        for level in reversed(range(len(channel_mult))):
            for _ in range(num_res_blocks + 1):
                layers.append(ResnetBlock(width, channels * channel_mult[level], dropout))
                width = channels * channel_mult[level]
            if level != 0:
                layers.append(Upsample(width))
        self.up = nn.Sequential(*layers)
        self.norm_out = _norm(width)
        self.conv_out = nn.Conv2d(width, out_channels, 3, padding=1)
        self.tanh_out = tanh_out

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.up(self.mid(self.conv_in(z)))
        out = self.conv_out(F.silu(self.norm_out(h)))
        return torch.tanh(out) if self.tanh_out else out
