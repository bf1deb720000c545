"""Embedders: image `(B, 3, h, w)` in model space + message `(B, nbits)` of 0/1 -> delta `(B, 3, h, w)` in [-1, 1].

- `VAEEmbedder` and its presets `vae_small` / `vae_big`: the reference architecture.
- `ConvEmbedder`: a small, fast conv net for CPU runs (quickstart, tests).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from wam_pipe.models.checks import require
from wam_pipe.models.layers import ConvNormAct
from wam_pipe.models.message import MessageProcessor
from wam_pipe.models.vae import NORM_GROUPS, VAEDecoder, VAEEncoder
from wam_pipe.models.protocols import register_model


def _match_size(delta: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Resize `delta` to the spatial size of `like` when strided layers rounded a size that was not a multiple."""
    if delta.shape[-2:] == like.shape[-2:]:
        return delta
    return F.interpolate(delta, size=like.shape[-2:], mode="bilinear", align_corners=False)


class VAEEmbedder(nn.Module):
    """The reference VAE-style embedder: encoder -> latent ++ message embedding -> decoder -> tanh delta.

    The latent sits at 1/2**(len(channel_mult)-1) of the input resolution (1/8 by default). The message processor
    (`nn.Embedding(2 * nbits, hidden)`, one row per bit value, rows summed) is broadcast over the latent grid and
    concatenated to the latent, so the decoder sees `z_channels + hidden` channels.

    Args:
        nbits: message length (default 32).
        hidden: message embedding width; None means `2 * nbits` as the reference (default None).
        channels: base width of encoder and decoder (default 32).
        channel_mult: width multiplier per level (default [1, 1, 1, 2]).
        num_res_blocks: resnet blocks per encoder level; the decoder has one more (default 2).
        z_channels: latent channels (default 4).
        dropout: dropout in resnet blocks (default 0.0).
    """

    def __init__(
        self,
        nbits: int = 32,
        hidden: Optional[int] = None,
        channels: int = 32,
        channel_mult: list[int] = (1, 1, 1, 2),
        num_res_blocks: int = 2,
        z_channels: int = 4,
        dropout: float = 0.0,
    ):
        super().__init__()
        mult = [int(m) for m in channel_mult]
        hidden = 2 * nbits if hidden is None else hidden
        require(nbits > 0, f"VAEEmbedder: nbits={nbits}: must be positive")
        require(hidden > 0, f"VAEEmbedder: hidden={hidden}: must be positive (or null for 2 * nbits)")
        require(len(mult) > 0, "VAEEmbedder: channel_mult is empty; give one multiplier per level, e.g. [1, 1, 1, 2]")
        require(
            all(m > 0 and channels * m % NORM_GROUPS == 0 for m in mult),
            f"VAEEmbedder: channels={channels}, channel_mult={mult}: every level width channels * mult must be a "
            f"positive multiple of {NORM_GROUPS} (GroupNorm groups); use channels=32 or 64",
        )
        self.nbits = nbits
        self.encoder = VAEEncoder(channels, mult, num_res_blocks, z_channels, dropout=dropout)
        self.msg_processor = MessageProcessor(nbits, hidden)
        self.decoder = VAEDecoder(channels, mult, num_res_blocks, z_channels + hidden, dropout=dropout)

    def forward(self, imgs: torch.Tensor, msgs: torch.Tensor) -> torch.Tensor:
        """imgs `(B, 3, h, w)` model space, msgs `(B, nbits)` of 0/1 -> delta `(B, 3, h, w)` in [-1, 1]."""
        latent = self.encoder(imgs)  # (B, z, h/8, w/8)
        msg_map = self.msg_processor.broadcast(msgs, *latent.shape[-2:]).to(latent.dtype)  # (B, hidden, h/8, w/8)
        delta = self.decoder(torch.cat([latent, msg_map], dim=1))
        return _match_size(delta, imgs)

    def last_layer(self) -> nn.Parameter:
        """Weight of the final conv, where gradient-norm loss balancing measures each loss's gradient."""
        return self.decoder.conv_out.weight


@register_model("embedder")
def vae_small(nbits: int = 32, hidden: Optional[int] = None, dropout: float = 0.0) -> VAEEmbedder:
    """The reference `vae_small` embedder (width 32, levels [1, 1, 1, 2], 2 resnet blocks; 1.11M params at 32 bits).

    Args:
        nbits: message length (default 32).
        hidden: message embedding width; None means `2 * nbits` (default None).
        dropout: dropout in resnet blocks (default 0.0).
    """
    return VAEEmbedder(nbits, hidden, channels=32, channel_mult=[1, 1, 1, 2], num_res_blocks=2, dropout=dropout)


@register_model("embedder")
def vae_big(nbits: int = 32, hidden: Optional[int] = None, dropout: float = 0.0) -> VAEEmbedder:
    """The reference `vae_big` embedder (base width 64, levels [1, 1, 2, 2], 2 resnet blocks; 5.64M params at 32 bits).

    Args:
        nbits: message length (default 32).
        hidden: message embedding width; None means `2 * nbits` (default None).
        dropout: dropout in resnet blocks (default 0.0).
    """
    return VAEEmbedder(nbits, hidden, channels=64, channel_mult=[1, 1, 2, 2], num_res_blocks=2, dropout=dropout)


@register_model("embedder")
class ConvEmbedder(nn.Module):
    """A small conv embedder for CPU runs: the message sets a tiled texture, the image sets its strength.

    `delta = tanh(texture(msgs)) * sigmoid(gate(imgs))`. The texture is a learned `(3, tile, tile)` pattern per
    message: like the VAE embedder's message processor, every bit owns one learned row for 0 and one for 1
    (`nn.Embedding(2 * nbits, 3 * tile * tile)`), the nbits rows are summed (scaled by 1/sqrt(nbits)) and the
    tile is repeated over the image. The gate is a few conv-GroupNorm-GELU blocks at half resolution giving a
    per-pixel, per-channel strength in (0, 1).

    Why: a HiDDeN-style embedder that concatenates a spatially constant message map to image features has no
    spatial carrier to write bits into; on a 2-core CPU it did not move bit accuracy off chance in 400 steps at
    64 px (measured), while detection quickly saturated the tanh. Here the delta depends on the message and has
    spatial structure from the first step, and the gate cannot change its sign, so the decoding signal is never
    lost. Measured at 64 px, 16 bits, batch 16, AdamW 2e-3, no augmentation: bit accuracy 0.91 after 1000 steps
    with scaling_w 0.3, 0.92 after 400 steps with scaling_w 1.0 (about 0.25 s per step on 2 CPU cores).
    A tile of 4 px matches the 4x stride of `ConvExtractor`'s deepest features, so every feature sees the same
    phase of the pattern (tile 8 learned about 2x slower). GroupNorm, not BatchNorm, so train/eval mode and DDP
    need no care.

    Args:
        nbits: message length (default 16).
        channels: width of the gate network (default 32).
        depth: conv blocks of the gate network after its stride-2 stem (default 2).
        tile: side in pixels of the repeated message texture (default 4).
    """

    def __init__(self, nbits: int = 16, channels: int = 32, depth: int = 2, tile: int = 4):
        super().__init__()
        require(nbits > 0, f"ConvEmbedder: nbits={nbits}: must be positive")
        require(channels > 0, f"ConvEmbedder: channels={channels}: must be positive")
        require(depth >= 0, f"ConvEmbedder: depth={depth}: must be >= 0")
        require(tile >= 1, f"ConvEmbedder: tile={tile}: must be >= 1")
        self.nbits = nbits
        self.tile = tile
        self.msg_processor = MessageProcessor(nbits, 3 * tile * tile)
        blocks = [ConvNormAct(3, channels, stride=2)] + [ConvNormAct(channels, channels) for _ in range(depth)]
        self.gate = nn.Sequential(*blocks)
        self.conv_out = nn.Conv2d(channels, 3, 3, padding=1)

    def texture(self, msgs: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """msgs `(B, nbits)` -> the message texture `(B, 3, height, width)`, anchored at the top-left corner."""
        t = self.tile
        tile = self.msg_processor(msgs).view(-1, 3, t, t) * self.nbits**-0.5  # (B, 3, t, t), unit variance
        reps = (-(-height // t), -(-width // t))  # ceil division
        return tile.repeat(1, 1, *reps)[..., :height, :width]  # (B, 3, height, width)

    def forward(self, imgs: torch.Tensor, msgs: torch.Tensor) -> torch.Tensor:
        """imgs `(B, 3, h, w)` model space, msgs `(B, nbits)` of 0/1 -> delta `(B, 3, h, w)` in [-1, 1]."""
        size = imgs.shape[-2:]
        strength = self.conv_out(self.gate(imgs))  # (B, 3, h/2, w/2)
        strength = F.interpolate(strength, size=size, mode="bilinear", align_corners=False)  # (B, 3, h, w)
        texture = self.texture(msgs, *size).to(strength.dtype)
        return torch.tanh(texture) * torch.sigmoid(strength)

    def last_layer(self) -> nn.Parameter:
        """Weight of the final conv (for gradient-norm loss balancing)."""
        return self.conv_out.weight
