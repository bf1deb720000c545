"""Pixel decoder: upsamples the ViT feature map back to image resolution and predicts per-pixel logits."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from wam_pipe.models.layers import LayerNorm2d


class UpscaleStage(nn.Sequential):
    """bilinear upsample x`factor` -> ReflectionPad(1) -> conv3x3 (no bias) -> LayerNorm2d -> GELU."""

    def __init__(self, in_channels: int, out_channels: int, factor: int):
        super().__init__(
            nn.Upsample(scale_factor=factor, mode="bilinear", align_corners=False),
            nn.ReflectionPad2d(1),
            nn.Conv2d(in_channels, out_channels, 3, bias=False),
            LayerNorm2d(out_channels),
            nn.GELU(),
        )


class PixelDecoder(nn.Module):
    """Features `(B, in_channels, h, w)` -> logits `(B, out_channels, h * prod(stages), w * prod(stages))`.

    Each stage divides the channel count by its upscale factor (768 -> 192 -> 96 -> 48 for sam_base), then a 1x1
    conv with bias gives the output channels (1 detection + nbits bit logits for an extractor).

    Args:
        in_channels: feature channels.
        out_channels: output logit channels.
        stages: upscale factor of each stage (default [4, 2, 2], x16 in total).
    """

    def __init__(self, in_channels: int, out_channels: int, stages: Sequence[int] = (4, 2, 2)):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels
        for factor in stages:
            layers.append(UpscaleStage(width, width // factor, factor))
            width //= factor
        self.upscale = nn.Sequential(*layers)
        self.head = nn.Conv2d(width, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.upscale(x))
