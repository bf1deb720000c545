"""PatchGAN discriminator for the optional adversarial loss."""

from __future__ import annotations

import torch
from torch import nn

from wam_pipe.models.checks import require


class PatchDiscriminator(nn.Module):
    """Pix2Pix PatchGAN: `(B, in_channels, H, W)` -> patch logits `(B, 1, h, w)` (62 x 62 at 256 px, n_layers 2).

    conv4x4 stride 2 + LeakyReLU(0.2), then `n_layers - 1` more stride-2 convs and one stride-1 conv, each followed
    by GroupNorm and LeakyReLU(0.2), widths doubling up to 8 * ndf, and a final stride-1 conv to one channel.
    Convs keep their bias (the norm is not BatchNorm). Weights are drawn from N(0, 0.02) (norm scales N(1, 0.02)),
    as in pix2pix. 168,033 parameters at the defaults.

    Args:
        in_channels: image channels (default 3).
        ndf: width of the first layer (default 32).
        n_layers: stride-2 layers after the first (depth of the patch pyramid) (default 2).
        norm_groups: GroupNorm groups (default 4).
    """

    def __init__(self, in_channels: int = 3, ndf: int = 32, n_layers: int = 2, norm_groups: int = 4):
        super().__init__()
        require(n_layers >= 1, f"PatchDiscriminator: n_layers={n_layers}: must be >= 1")
        require(
            ndf % norm_groups == 0, f"PatchDiscriminator: ndf={ndf}: must be a multiple of norm_groups={norm_groups}"
        )
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        width = ndf
        for n in range(1, n_layers + 1):
            out = ndf * min(2**n, 8)
            stride = 2 if n < n_layers else 1  # the last widening conv keeps the resolution
            layers += [
                nn.Conv2d(width, out, 4, stride=stride, padding=1),
                nn.GroupNorm(norm_groups, out),
                nn.LeakyReLU(0.2),
            ]
            width = out
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Pix2pix init: conv weights N(0, 0.02), norm weights N(1, 0.02), biases 0."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.GroupNorm):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        return self.net(imgs)
