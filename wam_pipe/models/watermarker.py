"""`Watermarker`: embedder + extractor (+ JND) at a fixed processing size, usable on images of any size."""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from wam_pipe.models.checks import ModelConfigError, nbits_mismatch


def resize(imgs: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, antialiased resize of `(B, C, H, W)` to `size`; a no-op when the size already matches."""
    if tuple(imgs.shape[-2:]) == tuple(size):
        return imgs
    return F.interpolate(imgs, size=size, mode="bilinear", align_corners=False, antialias=True)


class Watermarker(nn.Module):
    """The watermarking model: its `state_dict()` is the `model` entry of a checkpoint.

    `embed` runs the embedder at `img_size` and blends the (upsampled) delta at the input's resolution:
    `imgs_w = scaling_i * imgs + scaling_w * delta`, then JND attenuation if set. `detect` runs the extractor at
    `img_size`. Both accept any input size. It has no `forward`: training wraps it in the step's one forward module
    (embed, augment, extract), which DDP wraps; evaluation and inference call `embed` and `detect`.

    Args:
        embedder: an embedder (`forward(imgs, msgs) -> delta`, attribute `nbits`), e.g. `vae_small`.
        extractor: an extractor (`forward(imgs) -> (B, 1 + nbits, h, w)`, attribute `nbits`), e.g. `sam_base`.
        jnd: optional JND attenuation, e.g. `jnd_1_3_blue` (default None).
        scaling_w: watermark strength (default 0.3).
        scaling_i: weight of the original image in the blend (default 1.0).
        img_size: side at which the embedder and extractor run (default 256).
    """

    def __init__(
        self,
        embedder: Any,
        extractor: Any,
        jnd: Optional[Any] = None,
        scaling_w: float = 0.3,
        scaling_i: float = 1.0,
        img_size: int = 256,
    ):
        super().__init__()
        if nbits_mismatch(embedder.nbits, extractor.nbits):
            raise ModelConfigError(
                f"Watermarker: embedder.nbits={embedder.nbits} but extractor.nbits={extractor.nbits}; "
                "give both the same nbits"
            )
        if img_size <= 0:
            raise ModelConfigError(f"Watermarker: img_size={img_size}: must be positive")
        self.embedder = embedder
        self.extractor = extractor
        self.jnd = jnd
        self.scaling_w = scaling_w
        self.scaling_i = scaling_i
        self.img_size = img_size
        self.nbits = int(embedder.nbits)

    def embed(self, imgs: torch.Tensor, msgs: torch.Tensor) -> torch.Tensor:
        """imgs `(B, 3, H, W)` model space, msgs `(B, nbits)` of 0/1 -> watermarked `(B, 3, H, W)` model space."""
        size = (imgs.shape[-2], imgs.shape[-1])
        delta = self.embedder(resize(imgs, (self.img_size, self.img_size)), msgs)  # (B, 3, img_size, img_size)
        delta = resize(delta, size)  # (B, 3, H, W)
        imgs_w = self.scaling_i * imgs + self.scaling_w * delta
        if self.jnd is not None:
            imgs_w = self.jnd(imgs, imgs_w)
        return imgs_w

    def detect(self, imgs: torch.Tensor) -> torch.Tensor:
        """imgs `(B, 3, H, W)` model space -> logits `(B, 1 + nbits, img_size, img_size)`."""
        return self.extractor(resize(imgs, (self.img_size, self.img_size)))
