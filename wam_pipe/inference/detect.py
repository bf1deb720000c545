"""Embed a message into one full-resolution image, and detect / decode a watermark in one.

Full resolution in, full resolution out: `Watermarker.embed` runs the embedder at `img_size` and blends the
upsampled delta at the image's own resolution; `detect` runs the extractor at `img_size`, and the predicted mask is
upsampled back to the image's size.

Presence rule (documented, with the measurements behind its default, in docs/eval.md): a pixel is predicted
watermarked when its detection logit is > 0 (probability > 0.5); the image holds a watermark when its largest
connected region of such pixels (8-connected, at the extractor's resolution) covers at least `min_fraction` of the
image (default 8%). A watermark is a region, while a model's false positives on clean photos are scattered specks:
their total can reach 14% of a photo for a weak model, their largest region stayed under 6% (docs/eval.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from wam_pipe.core.imaging import normalize_uint8, to_uint8
from wam_pipe.core.metrics import psnr

DEFAULT_MIN_FRACTION = 0.08


@dataclasses.dataclass
class Embedded:
    image: torch.Tensor  # uint8 (3, H, W), what is written to disk
    psnr: float  # of the uint8 result against the input, dB


@dataclasses.dataclass
class Detection:
    present: bool  # region >= the min_fraction asked for
    fraction: float  # of the image's pixels predicted watermarked
    region: float  # share of the image covered by the largest connected predicted region
    message: torch.Tensor  # (nbits,) 0/1
    mean_logits: torch.Tensor  # (nbits,) bit logits averaged over the predicted region
    mask: torch.Tensor  # (H, W) bool, at the input resolution
    preds: torch.Tensor  # (1 + nbits, s, s) raw logits at the model's size (for --multi)

    @property
    def confidence(self) -> torch.Tensor:
        """Per-bit confidence in [0.5, 1]: sigmoid of the absolute averaged logit."""
        return torch.sigmoid(self.mean_logits.abs())


@torch.no_grad()
def embed_image(model: Any, image: torch.Tensor, message: torch.Tensor, mask: torch.Tensor | None = None) -> Embedded:
    """Watermark uint8 `image` `(3, H, W)` with `message` `(nbits,)`, only inside `mask` `(1, H, W)` if given."""
    device = next(model.parameters()).device
    covers = normalize_uint8(image[None].to(device))  # (1, 3, H, W)
    marked = model.embed(covers, message[None].to(device).float()).float()  # (1, 3, H, W)
    if mask is not None:
        m = mask[None].to(device)  # (1, 1, H, W)
        marked = covers * (1 - m) + marked * m
    out = to_uint8(marked)  # (1, 3, H, W)
    quality = psnr(normalize_uint8(out), covers)
    return Embedded(out[0].cpu(), float(quality[0]))


def region_mean_logits(bits: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Bit logits `(nbits, s, s)` averaged over `region` `(s, s)` 0/1 (all pixels when it is empty) -> `(nbits,)`."""
    weight = region.float()
    if not bool(weight.any()):
        weight = torch.ones_like(weight)
    return (bits * weight).sum(dim=(1, 2)) / weight.sum()


def largest_region_fraction(mask: torch.Tensor) -> float:
    """Share of `mask` `(s, s)` bool covered by its largest 8-connected region of True pixels (0 when none)."""
    from scipy import ndimage  # a dependency of scikit-learn

    if not bool(mask.any()):
        return 0.0
    labels, _ = ndimage.label(mask.cpu().numpy(), structure=np.ones((3, 3), dtype=bool))  # (s, s) 0 = background
    return float(np.bincount(labels.ravel())[1:].max()) / mask.numel()


def read_logits(preds: torch.Tensor, size: tuple[int, int], min_fraction: float = DEFAULT_MIN_FRACTION) -> Detection:
    """The detection of one image from the extractor's logits `preds` `(1 + nbits, s, s)` and the image's `size`
    (H, W): the predicted mask upsampled to `size`, the largest connected region, the region-averaged message."""
    preds = preds.float()
    det, bits = preds[0], preds[1:]  # (s, s), (nbits, s, s)
    full = F.interpolate(det[None, None], size=tuple(size), mode="bilinear", align_corners=False)[0, 0]  # (H, W)
    mask = full > 0
    fraction = float(mask.float().mean())
    mean_logits = region_mean_logits(bits, det > 0)
    # Measured on the extractor's own grid: the same cost and answer whatever the photo's resolution.
    region = largest_region_fraction(det > 0)
    return Detection(present=region >= min_fraction, fraction=fraction, region=region,
                     message=(mean_logits > 0).float().cpu(), mean_logits=mean_logits.cpu(), mask=mask.cpu(),
                     preds=preds.cpu())


@torch.no_grad()
def detect_image(model: Any, image: torch.Tensor, min_fraction: float = DEFAULT_MIN_FRACTION) -> Detection:
    """Detect and decode the watermark of uint8 `image` `(3, H, W)`.

    Args:
        min_fraction: the image holds a watermark when its largest connected predicted region covers at least this
            share of it (default 0.08).
    """
    device = next(model.parameters()).device
    preds = model.detect(normalize_uint8(image[None].to(device)))[0]  # (1 + nbits, s, s)
    return read_logits(preds, tuple(image.shape[-2:]), min_fraction)
