"""Extractors: image `(B, 3, h, w)` in model space -> logits `(B, 1 + nbits, h, w)`.

Channel 0 is the per-pixel detection logit (is this pixel watermarked), channels 1..nbits the per-pixel bit logits.

- `SamExtractor` and its presets `sam_tiny` / `sam_small` / `sam_base`: the reference ViT + pixel decoder.
- `ConvExtractor`: a small, fast U-Net-ish conv net for CPU runs (quickstart, tests).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from wam_pipe.models.checks import require
from wam_pipe.models.layers import ConvNormAct
from wam_pipe.models.pixel_decoder import PixelDecoder
from wam_pipe.models.vit import ImageEncoderViT, default_global_blocks
from wam_pipe.models.protocols import register_model


def _resize_to(logits: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Bring logits to the input size when it was not a multiple of the model's total stride."""
    if logits.shape[-2:] == size:
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class SamExtractor(nn.Module):
    """The reference extractor: SAM/ViTDet image encoder (neck width = embed_dim) + pixel decoder.

    Windowed attention everywhere except the global blocks; the learned absolute position embedding and the global
    blocks' relative position tables are sized for `img_size` and interpolated for other input sizes.

    Args:
        nbits: message length; the output has 1 + nbits channels (default 32).
        img_size: input side the model is built for, a multiple of `patch_size` (default 256).
        embed_dim: token width (default 768).
        depth: transformer blocks (default 12).
        num_heads: attention heads (default 12).
        mlp_ratio: MLP width / embed_dim (default 4.0).
        patch_size: patch side (default 16).
        window_size: window side in tokens (default 8).
        global_blocks: blocks with global attention; None means the last block of each quarter of the depth,
            [2, 5, 8, 11] at depth 12 (default None).
        upscale_stages: pixel decoder upscale factors, product = patch_size (default [4, 2, 2]).
    """

    def __init__(
        self,
        nbits: int = 32,
        img_size: int = 256,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        patch_size: int = 16,
        window_size: int = 8,
        global_blocks: Optional[list[int]] = None,
        upscale_stages: list[int] = (4, 2, 2),
    ):
        super().__init__()
        stages = [int(s) for s in upscale_stages]
        blocks = default_global_blocks(depth) if global_blocks is None else [int(i) for i in global_blocks]
        name = "SamExtractor"
        require(nbits > 0, f"{name}: nbits={nbits}: must be positive")
        require(depth >= 1, f"{name}: depth={depth}: needs at least 1 block")
        require(img_size % patch_size == 0, f"{name}: img_size={img_size}: must be a multiple of {patch_size}")
        require(embed_dim % num_heads == 0, f"{name}: embed_dim={embed_dim}: must divide into {num_heads} heads")
        require(window_size >= 1, f"{name}: window_size={window_size}: must be >= 1")
        require(all(0 <= i < depth for i in blocks), f"{name}: global_blocks={blocks}: indices must be in [0, {depth})")
        require(
            math.prod(stages) == patch_size,
            f"{name}: upscale_stages={stages}: their product must equal patch_size={patch_size}",
        )
        self.nbits = nbits
        self.img_size = img_size
        self.image_encoder = ImageEncoderViT(
            img_size, patch_size, embed_dim, depth, num_heads, mlp_ratio, window_size, blocks, out_channels=embed_dim
        )
        self.pixel_decoder = PixelDecoder(embed_dim, 1 + nbits, stages)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        """imgs `(B, 3, h, w)` model space -> logits `(B, 1 + nbits, h, w)`."""
        return _resize_to(self.pixel_decoder(self.image_encoder(imgs)), imgs.shape[-2:])


@register_model("extractor")
def sam_tiny(nbits: int = 32, img_size: int = 256, depth: int = 12, window_size: int = 8) -> SamExtractor:
    """The reference `sam_tiny` extractor (ViT width 192, 3 heads; 6.03M params at 32 bits, 256 px).

    Args:
        nbits: message length (default 32).
        img_size: input side (default 256).
        depth: transformer blocks; global blocks scale with it (default 12).
        window_size: attention window in tokens (default 8).
    """
    return SamExtractor(nbits, img_size, embed_dim=192, depth=depth, num_heads=3, window_size=window_size)


@register_model("extractor")
def sam_small(nbits: int = 32, img_size: int = 256, depth: int = 12, window_size: int = 8) -> SamExtractor:
    """The reference `sam_small` extractor (ViT width 384, 6 heads; 23.58M params at 32 bits, 256 px).

    Args:
        nbits: message length (default 32).
        img_size: input side (default 256).
        depth: transformer blocks; global blocks scale with it (default 12).
        window_size: attention window in tokens (default 8).
    """
    return SamExtractor(nbits, img_size, embed_dim=384, depth=depth, num_heads=6, window_size=window_size)


@register_model("extractor")
def sam_base(nbits: int = 32, img_size: int = 256, depth: int = 12, window_size: int = 8) -> SamExtractor:
    """The reference `sam_base` extractor (ViT-B: width 768, 12 heads; 93.31M params at 32 bits, 256 px).

    Args:
        nbits: message length (default 32).
        img_size: input side (default 256).
        depth: transformer blocks; global blocks scale with it (default 12).
        window_size: attention window in tokens (default 8).
    """
    return SamExtractor(nbits, img_size, embed_dim=768, depth=depth, num_heads=12, window_size=window_size)


@register_model("extractor")
class ConvExtractor(nn.Module):
    """A small U-Net-ish conv extractor for CPU runs (about 0.2M parameters at the defaults).

    Design, and why: a stride-2 stem (1/2 resolution) and a stride-2 block (1/4) feed `depth` residual conv blocks
    at 1/4 resolution, where most of the receptive field (~40 px) is gathered cheaply; the 1/4 features are
    upsampled, concatenated with the 1/2 stem features (skip connection, so mask edges stay sharp), fused by one
    conv, and a 1x1 head predicts 1 + nbits logits that are bilinearly upsampled to full size. No work is done at
    full resolution, which keeps CPU training at 64-128 px fast. GroupNorm, not BatchNorm, so train/eval mode and DDP
    need no care.

    Args:
        nbits: message length; the output has 1 + nbits channels (default 16).
        channels: width at 1/2 resolution; 1/4 resolution uses twice as many (default 32).
        depth: residual conv blocks at 1/4 resolution (default 3).
        img_size: nominal input side, informative only: any size divisible by 4 works (default 128).
    """

    def __init__(self, nbits: int = 16, channels: int = 32, depth: int = 3, img_size: int = 128):
        super().__init__()
        require(nbits > 0, f"ConvExtractor: nbits={nbits}: must be positive")
        require(channels > 0, f"ConvExtractor: channels={channels}: must be positive")
        require(depth >= 0, f"ConvExtractor: depth={depth}: must be >= 0")
        self.nbits = nbits
        self.img_size = img_size
        wide = 2 * channels
        self.stem = ConvNormAct(3, channels, stride=2)
        self.down = ConvNormAct(channels, wide, stride=2)
        self.body = nn.ModuleList(ConvNormAct(wide, wide) for _ in range(depth))
        self.fuse = ConvNormAct(wide + channels, channels)
        self.head = nn.Conv2d(channels, 1 + nbits, 1)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        """imgs `(B, 3, h, w)` model space -> logits `(B, 1 + nbits, h, w)`."""
        half = self.stem(imgs)  # (B, C, h/2, w/2)
        quarter = self.down(half)  # (B, 2C, h/4, w/4)
        for block in self.body:
            quarter = quarter + block(quarter)
        up = F.interpolate(quarter, size=half.shape[-2:], mode="bilinear", align_corners=False)  # (B, 2C, h/2, w/2)
        logits = self.head(self.fuse(torch.cat([up, half], dim=1)))  # (B, 1 + nbits, h/2, w/2)
        return F.interpolate(logits, size=imgs.shape[-2:], mode="bilinear", align_corners=False)
