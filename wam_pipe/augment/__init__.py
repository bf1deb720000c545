"""Watermark masks and the 14 augmentations, batched on the training device.

YAML names them as `_target_: wam_pipe.augment.<Class>`; `AUGMENTATIONS` maps the pipeline names (rotate, jpeg, ...)
to the classes, filled by `@register_augmentation` on each class (see `wam_pipe.augment.registry`). Adding an
augmentation: a decorated class in one of the modules below, and its name in this file's imports and `__all__`. Every augmentation has `__call__(imgs, masks, per_sample=False)` (random strength from its range) and
`apply(imgs, masks, strength)` (a fixed strength, for the eval grid); see `wam_pipe.augment.base`.

`__all__` lists the components a pipeline can name (what `wam-pipe ls` shows) plus the registries; the helpers
`Augmentation`, `representative_masks` and `non_overlapping_boxes` are importable from here too.
"""

from __future__ import annotations

from wam_pipe.augment.base import Augmentation  # re-exported helper
# Importing the modules registers their augmentations, in this order (the order of `AUGMENTATIONS`).
from wam_pipe.augment.geometric import Crop, CropResizePad, HorizontalFlip, Identity, Perspective, Resize, Rotate
from wam_pipe.augment.jpeg import JPEG
from wam_pipe.augment.filters import GaussianBlur, MedianFilter  # noqa: I001 (registration order)
from wam_pipe.augment.masks import MaskSampler
from wam_pipe.augment.masks import non_overlapping_boxes  # re-exported helper
from wam_pipe.augment.masks import representative_masks  # re-exported helper
from wam_pipe.augment.registry import AUGMENTATIONS, EVAL_STRENGTHS
from wam_pipe.augment.registry import build_augmentation, register_augmentation  # re-exported helpers
from wam_pipe.augment.valuemetric import Brightness, ColorJitter, Contrast, Hue, Saturation

__all__ = [
    "AUGMENTATIONS",
    "EVAL_STRENGTHS",
    "Brightness",
    "ColorJitter",
    "Contrast",
    "Crop",
    "CropResizePad",
    "GaussianBlur",
    "HorizontalFlip",
    "Hue",
    "Identity",
    "JPEG",
    "MaskSampler",
    "MedianFilter",
    "Perspective",
    "Resize",
    "Rotate",
    "Saturation",
]
