"""Colour augmentations (brightness, contrast, saturation, hue) and the cover-image `ColorJitter`.

All work in `[0, 1]` pixel space, clamped, with one factor per image available; masks are left untouched.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from wam_pipe.augment._common import InvalidSetting, check_range, config_problems, uniform
from wam_pipe.augment.base import Params, ValuemetricAugmentation, per_image, require_strength
from wam_pipe.augment.registry import register_augmentation
from wam_pipe.augment.color import adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation
from wam_pipe.core.imaging import from_unit, to_unit


class _FactorAugmentation(ValuemetricAugmentation):
    """A colour edit driven by one number per image drawn from `[min, max]`."""

    range_key = "factor"

    def __init__(self, weight: float, value_range: list[float], low: float | None = None,
                 high: float | None = None) -> None:
        super().__init__(weight)
        self.value_range = check_range(self.name, self.range_key, value_range, low=low, high=high)

    def sample_params(self, n: int, batch: int, height: int, width: int) -> Params:
        return {"value": uniform(*self.value_range, n)}

    def fixed_params(self, strength: float | None, batch: int, height: int, width: int) -> Params:
        return {"value": torch.tensor([require_strength(self.name, strength)], dtype=torch.float64)}


@register_augmentation("brightness", eval_strengths=(0.5, 1.5))
class Brightness(_FactorAugmentation):
    """Multiply intensities. `strength` = the factor (1 = unchanged, 0.5 darker, 1.5 brighter).

    Args:
        weight: relative probability of being picked (default 1.0).
        factor: `[min, max]` training range of the factor (default [0.5, 2.0]).
    """

    def __init__(self, weight: float = 1.0, factor: list[float] = (0.5, 2.0)) -> None:
        super().__init__(weight, factor, low=0.0)
        self.factor = self.value_range

    def adjust(self, pixels: torch.Tensor, params: Params) -> torch.Tensor:
        return adjust_brightness(pixels, per_image(params["value"], pixels))


@register_augmentation("contrast", eval_strengths=(0.5, 1.5))
class Contrast(_FactorAugmentation):
    """Blend with the mean grey level. `strength` = the factor (1 = unchanged, 0.5 flatter, 1.5 stronger).

    Args:
        weight: relative probability of being picked (default 1.0).
        factor: `[min, max]` training range of the factor (default [0.5, 2.0]).
    """

    def __init__(self, weight: float = 1.0, factor: list[float] = (0.5, 2.0)) -> None:
        super().__init__(weight, factor, low=0.0)
        self.factor = self.value_range

    def adjust(self, pixels: torch.Tensor, params: Params) -> torch.Tensor:
        return adjust_contrast(pixels, per_image(params["value"], pixels))


@register_augmentation("saturation", eval_strengths=(0.5, 1.5))
class Saturation(_FactorAugmentation):
    """Blend with the grey image. `strength` = the factor (1 = unchanged, 0 = grey, 1.5 more saturated).

    Args:
        weight: relative probability of being picked (default 1.0).
        factor: `[min, max]` training range of the factor (default [0.5, 2.0]).
    """

    def __init__(self, weight: float = 1.0, factor: list[float] = (0.5, 2.0)) -> None:
        super().__init__(weight, factor, low=0.0)
        self.factor = self.value_range

    def adjust(self, pixels: torch.Tensor, params: Params) -> torch.Tensor:
        return adjust_saturation(pixels, per_image(params["value"], pixels))


@register_augmentation("hue", eval_strengths=(-0.5, -0.25, 0.25, 0.5))
class Hue(_FactorAugmentation):
    """Rotate the hue. `strength` = the shift in turns of the colour wheel, in [-0.5, 0.5] (0 = unchanged).

    Args:
        weight: relative probability of being picked (default 1.0).
        shift: `[min, max]` training range of the shift (default [-0.1, 0.1]).
    """

    range_key = "shift"

    def __init__(self, weight: float = 1.0, shift: list[float] = (-0.1, 0.1)) -> None:
        super().__init__(weight, shift, low=-0.5, high=0.5)
        self.shift = self.value_range

    def adjust(self, pixels: torch.Tensor, params: Params) -> torch.Tensor:
        return adjust_hue(pixels, per_image(params["value"], pixels))


class ColorJitter:
    """Random brightness, contrast, saturation and hue for the cover images, drawn per image, before embedding.

    The reference jittered each image on the CPU in its loader; here the whole batch is jittered on its device.
    The order of the four edits is drawn once per batch; each edit clamps to `[0, 1]` as torchvision does.

    Args:
        brightness: factor drawn in `[1 - b, 1 + b]` (default 0.2; 0 disables).
        contrast: factor drawn in `[1 - c, 1 + c]` (default 0.2; 0 disables).
        saturation: factor drawn in `[1 - s, 1 + s]` (default 0.2; 0 disables).
        hue: shift drawn in `[-h, h]` turns, h <= 0.5 (default 0.1; 0 disables).
    """

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2, saturation: float = 0.2,
                 hue: float = 0.1) -> None:
        for key, value, high in (("brightness", brightness, None), ("contrast", contrast, None),
                                 ("saturation", saturation, None), ("hue", hue, 0.5)):
            if not float(value) >= 0.0 or (high is not None and float(value) > high):
                limit = f" and <= {high}" if high is not None else ""
                raise InvalidSetting("cover_jitter", key, f"must be >= 0{limit}, got {value}")
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.saturation, self.hue = float(saturation), float(hue)

    @classmethod
    def check_config(cls, node: dict) -> list[tuple[str, str]]:
        """Range checks for `wam-pipe validate`, before anything is built."""
        return config_problems(cls, node)

    def _edits(self) -> list[tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], float, float]]:
        """The enabled edits as (function, min, max) of their per-image value."""
        edits = []
        for fn, amount in ((adjust_brightness, self.brightness), (adjust_contrast, self.contrast),
                           (adjust_saturation, self.saturation)):
            if amount > 0:
                edits.append((fn, max(0.0, 1.0 - amount), 1.0 + amount))
        if self.hue > 0:
            edits.append((adjust_hue, -self.hue, self.hue))
        return edits

    def __call__(self, imgs: torch.Tensor) -> torch.Tensor:
        """Jitter model-space images `(B, 3, H, W)`; returns model-space images of the same shape."""
        edits = self._edits()
        if not edits:
            return imgs
        batch = imgs.shape[0]
        pixels = to_unit(imgs).clamp(0.0, 1.0)
        for index in torch.randperm(len(edits)).tolist():
            fn, lo, hi = edits[index]
            pixels = fn(pixels, per_image(uniform(lo, hi, batch), pixels)).clamp(0.0, 1.0)
        return from_unit(pixels)

    def __repr__(self) -> str:
        return (f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation}, hue={self.hue})")
