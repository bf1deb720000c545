"""Just-noticeable-difference attenuation: scale the watermark down where the eye would see it.

The heatmap follows the classic pixel-domain JND model (luminance masking + contrast masking): dark/bright flat areas
and textured areas tolerate larger changes. The watermarked image is pulled back towards the original,
`x + hmap * (x_w - x)`, in [0, 1] pixel space.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wam_pipe.core.imaging import from_unit, to_unit
from wam_pipe.models.checks import require

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
BLUE_WEIGHTS = (0.5, 0.5, 1.0)  # R and G maps halved: the eye is least sensitive to changes in blue.
SQRT_EPS = 1e-5  # inside the luminance-masking sqrt, as the reference (17 * (1 - sqrt(la / 127 + eps)))


def _kernels() -> dict[str, torch.Tensor]:
    luminance = torch.tensor(
        [[1, 1, 1, 1, 1], [1, 2, 2, 2, 1], [1, 2, 0, 2, 1], [1, 2, 2, 2, 1], [1, 1, 1, 1, 1]], dtype=torch.float32
    ) / 32.0  # mean background luminance around a pixel (the weights sum to 32)
    sobel_x = torch.tensor([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=torch.float32)
    sobel_y = torch.tensor([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], dtype=torch.float32)  # the reference's orientation
    return {"kernel_lum": luminance, "kernel_x": sobel_x, "kernel_y": sobel_y}


class JND(nn.Module):
    """JND attenuation of a watermarked image, computed in fp32 (even under autocast: g**2.4 overflows fp16).

    Heatmap, on the original image in [0, 255] (luminance Y = .299R + .587G + .114B if `in_channels` is 1,
    each RGB channel separately if 3):
    `la = conv5x5(lum)` (background luminance), luminance masking `17 (1 - sqrt(la / 127 + 1e-5))` if la <= 127 else
    `3 / 128 (la - 127) + 3`; contrast masking `0.117 * 16 g**2.4 / (g**2 + 26**2)` with g the Sobel gradient
    magnitude; `hmap = max(lm + cm - 0.3 min(lm, cm), 0) / 255`.

    Choices: the kernels are persistent buffers (saved in the state dict as the reference's frozen parameters are,
    never handed to an optimizer); borders are zero-padded, exactly as the reference (so its released models
    see the heatmap they were trained with: the outer 2 px look like the edge of a dark frame); the heatmap is treated as a constant of the cover image (no gradient through it, which also avoids the
    infinite derivative of sqrt at 0); gradients flow through `imgs_w`.

    Args:
        in_channels: 1 = heatmap from luminance, 3 = one heatmap per RGB channel (default 1).
        out_channels: 3 = one map per RGB channel (a single map repeated, or per-channel maps), 1 = one map for all
            channels (per-channel maps are averaged) (default 3).
        blue: weight the R, G, B maps by 0.5, 0.5, 1.0; needs out_channels 3 (default True).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 3, blue: bool = True):
        super().__init__()
        require(in_channels in (1, 3), f"JND: in_channels={in_channels}: must be 1 (luminance) or 3 (RGB)")
        require(out_channels in (1, 3), f"JND: out_channels={out_channels}: must be 1 or 3")
        require(not blue or out_channels == 3, "JND: blue=true needs out_channels=3 (it weights the R, G, B maps)")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.blue = blue
        for name, kernel in _kernels().items():
            self.register_buffer(name, kernel)
        self.register_buffer("channel_weights", torch.tensor(BLUE_WEIGHTS if blue else (1.0, 1.0, 1.0)))
        # Not in the state dict (a constant); a buffer so it moves with the module instead of being uploaded per call.
        self.register_buffer("luma_weights", torch.tensor(LUMA_WEIGHTS).view(1, 3, 1, 1), persistent=False)

    def _filter(self, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """Depthwise 2-D filter of `(B, C, H, W)` with zero padding (the reference's `padding=k // 2`)."""
        channels, size = x.shape[1], kernel.shape[-1]
        weight = kernel.float().expand(channels, 1, size, size)
        return F.conv2d(x, weight, padding=size // 2, groups=channels)

    def heatmap(self, unit_imgs: torch.Tensor) -> torch.Tensor:
        """Pixel-space images `(B, 3, H, W)` in [0, 1] -> heatmap `(B, out_channels, H, W)` in [0, 1] units."""
        x = unit_imgs.float().clamp(0, 1) * 255
        if self.in_channels == 1:
            x = (x * self.luma_weights.float()).sum(dim=1, keepdim=True)  # (B, 1, H, W)
        la = self._filter(x, self.kernel_lum)
        lum_mask = torch.where(la <= 127, 17 * (1 - torch.sqrt(la.clamp(min=0) / 127 + SQRT_EPS)), 3 / 128 * (la - 127) + 3)
        grad = torch.sqrt(self._filter(x, self.kernel_x) ** 2 + self._filter(x, self.kernel_y) ** 2)
        contrast_mask = 0.117 * 16 * grad**2.4 / (grad**2 + 26**2)
        hmap = (lum_mask + contrast_mask - 0.3 * torch.minimum(lum_mask, contrast_mask)).clamp(min=0) / 255
        if self.out_channels == 1:
            return hmap.mean(dim=1, keepdim=True)  # (B, 1, H, W)
        return hmap.expand(-1, 3, -1, -1) * self.channel_weights.float().view(1, 3, 1, 1)  # (B, 3, H, W)

    def forward(self, imgs: torch.Tensor, imgs_w: torch.Tensor) -> torch.Tensor:
        """Original and watermarked images `(B, 3, H, W)` in model space -> attenuated watermarked image (fp32)."""
        with torch.autocast(device_type=imgs.device.type, enabled=False):
            cover = to_unit(imgs.float())
            marked = to_unit(imgs_w.float())
            with torch.no_grad():
                hmap = self.heatmap(cover)
            return from_unit(cover + hmap * (marked - cover))


def jnd_1_1() -> JND:
    """JND from luminance, one map applied to all channels."""
    return JND(in_channels=1, out_channels=1, blue=False)


def jnd_3_3() -> JND:
    """JND per RGB channel, each channel attenuated by its own map."""
    return JND(in_channels=3, out_channels=3, blue=False)


def jnd_1_3() -> JND:
    """JND from luminance, the map repeated over the 3 channels."""
    return JND(in_channels=1, out_channels=3, blue=False)


def jnd_1_3_blue() -> JND:
    """JND from luminance, the map weighted 0.5 / 0.5 / 1.0 over R / G / B (the reference fine-tuning setting)."""
    return JND(in_channels=1, out_channels=3, blue=True)


def jnd_3_1() -> JND:
    """JND per RGB channel, the three maps averaged into one map for all channels."""
    return JND(in_channels=3, out_channels=1, blue=False)
