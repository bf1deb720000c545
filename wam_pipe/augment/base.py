"""The interface every augmentation follows, and the value-space base of the non-geometric ones.

An augmentation is split in three so that training and evaluation share one code path:

- `sample_params(n, batch, height, width)`: random parameters drawn on the CPU (`n` = 1 for one set per batch as the
  reference, or `batch` for one set per sample), as a dict of CPU tensors with leading dimension `n`;
- `fixed_params(strength, batch, height, width)`: the deterministic parameters of one eval-grid strength;
- `transform(imgs, masks, params)`: the batched work on the images' device; it never reads device data back.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from wam_pipe.augment._common import (
    InvalidSetting,
    Pair,
    as_float_masks,
    config_problems,
    straight_through,
    to_device,
)
from wam_pipe.core.imaging import from_unit, to_unit

Params = dict[str, torch.Tensor]


class Augmentation:
    """Base class: one image edit applied to images `(B, 3, H, W)` (model space) and masks `(B, K, H, W)`.

    Args:
        weight: relative probability of being picked by the `augment` stage (default 1.0; 0 disables it).
    """

    name: ClassVar[str] = "augmentation"
    geometric: ClassVar[bool] = False

    def __init__(self, weight: float = 1.0) -> None:
        weight = float(weight)
        if not weight >= 0.0:  # also rejects NaN
            raise InvalidSetting(self.name, "weight", f"must be >= 0, got {weight:g}")
        self.weight = weight

    @classmethod
    def check_config(cls, node: dict) -> list[tuple[str, str]]:
        """Range checks for `wam-pipe validate`, before anything is built."""
        return config_problems(cls, node)

    def __call__(self, imgs: torch.Tensor, masks: torch.Tensor, per_sample: bool = False) -> Pair:
        """Apply a random strength from the configured range: one for the batch, or one per sample."""
        batch, _, height, width = imgs.shape
        params = self.sample_params(batch if per_sample else 1, batch, height, width)
        return self.transform(imgs, as_float_masks(masks, imgs), params)

    def apply(self, imgs: torch.Tensor, masks: torch.Tensor, strength: float | None = None) -> Pair:
        """Apply one fixed strength, deterministically (the eval grid). See the class docstring for its meaning."""
        batch, _, height, width = imgs.shape
        params = self.fixed_params(strength, batch, height, width)
        return self.transform(imgs, as_float_masks(masks, imgs), params)

    def sample_params(self, n: int, batch: int, height: int, width: int) -> Params:
        """Random parameters on the CPU, each with leading dimension `n` (1 or `batch`)."""
        return {}

    def fixed_params(self, strength: float | None, batch: int, height: int, width: int) -> Params:
        """Deterministic parameters for `strength` (leading dimension 1)."""
        return {}

    def transform(self, imgs: torch.Tensor, masks: torch.Tensor, params: Params) -> Pair:
        """The edit itself, on the images' device."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(weight={self.weight})"


def require_strength(owner: str, strength: float | None) -> float:
    """`strength` as a float, or a clear error when an eval grid forgot it."""
    if strength is None:
        raise ValueError(f"{owner}.apply: this augmentation needs a strength")
    return float(strength)


class ValuemetricAugmentation(Augmentation):
    """Base of the pixel-value edits: work in `[0, 1]` pixel space, clamped before and after, masks untouched.

    Subclasses implement `adjust(pixels, params)`; `straight_through = True` makes the edit pass gradients unchanged
    (for edits that are not differentiable, such as JPEG and the median filter).
    """

    straight_through: ClassVar[bool] = False

    def transform(self, imgs: torch.Tensor, masks: torch.Tensor, params: Params) -> Pair:
        if not self.straight_through:
            return self._edit(imgs, params), masks
        with torch.no_grad():  # the gradient bypasses the edit, so do not record it
            out = self._edit(imgs, params)
        return straight_through(imgs, out), masks

    def _edit(self, imgs: torch.Tensor, params: Params) -> torch.Tensor:
        pixels = to_unit(imgs).clamp(0.0, 1.0)
        return from_unit(self.adjust(pixels, params).clamp(0.0, 1.0))

    def adjust(self, pixels: torch.Tensor, params: Params) -> torch.Tensor:
        raise NotImplementedError


def per_image(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A CPU `(n,)` parameter as a `(n, 1, 1, 1)` tensor on `like`'s device, broadcasting over the batch."""
    return to_device(values, like).view(-1, 1, 1, 1)  # (n, 1, 1, 1)
