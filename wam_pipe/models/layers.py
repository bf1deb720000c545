"""Small building blocks shared by several models: channel-first LayerNorm and conv-norm-activation."""

from __future__ import annotations

import math

import torch
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of a `(B, C, H, W)` tensor (SAM's neck / pixel decoder norm).

    Args:
        channels: number of channels C.
        eps: added to the variance.
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)  # (B, 1, H, W)
        var = (x - mean).pow(2).mean(dim=1, keepdim=True)
        x = (x - mean) * torch.rsqrt(var + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


def group_norm(channels: int, max_groups: int = 8) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= `max_groups` that divides `channels` (never fails on odd widths)."""
    return nn.GroupNorm(math.gcd(channels, max_groups), channels)


class ConvNormAct(nn.Sequential):
    """conv3x3 (optionally strided) -> GroupNorm -> GELU, the unit of the small CPU conv nets.

    GroupNorm rather than BatchNorm: it behaves the same in train and eval mode and needs no SyncBatchNorm under DDP.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: 2 halves the resolution.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            group_norm(out_channels),
            nn.GELU(),
        )
