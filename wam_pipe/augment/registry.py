"""Name -> class of the 14 augmentations, and the reference's evaluation strengths for each.

The names are the keys a pipeline uses under `stages.augment.augs` and the `aug` column of the eval grid.
"""

from __future__ import annotations

from wam_pipe.augment.base import Augmentation
from wam_pipe.augment.filters import GaussianBlur, MedianFilter
from wam_pipe.augment.geometric import Crop, CropResizePad, HorizontalFlip, Identity, Perspective, Resize, Rotate
from wam_pipe.augment.jpeg import JPEG
from wam_pipe.augment.valuemetric import Brightness, Contrast, Hue, Saturation

AUGMENTATIONS: dict[str, type[Augmentation]] = {
    cls.name: cls
    for cls in (Identity, HorizontalFlip, Rotate, Resize, Crop, Perspective, CropResizePad, JPEG, GaussianBlur,
                MedianFilter, Brightness, Contrast, Saturation, Hue)
}

# The reference validation strengths (`None`: the augmentation takes no strength). The meaning of a strength is
# documented on each class; crop_resize_pad's 0.7 is the middle of the reference's 0.6-0.8 evaluation setting.
EVAL_STRENGTHS: dict[str, tuple[float | None, ...]] = {
    "identity": (None,),
    "hflip": (None,),
    "rotate": (10, 30, 45, 90),
    "resize": (0.5, 0.75),
    "crop": (0.5, 0.75),
    "perspective": (0.2, 0.5, 0.8),
    "crop_resize_pad": (0.7,),
    "jpeg": (40, 60, 80),
    "gaussian_blur": (3, 5, 9, 17),
    "median_filter": (3, 5, 9, 17),
    "brightness": (0.5, 1.5),
    "contrast": (0.5, 1.5),
    "saturation": (0.5, 1.5),
    "hue": (-0.5, -0.25, 0.25, 0.5),
}


def build_augmentation(name: str, **kwargs: object) -> Augmentation:
    """An augmentation by registry name, e.g. `build_augmentation("rotate", degrees=[-5, 5])`."""
    if name not in AUGMENTATIONS:
        raise KeyError(f"unknown augmentation {name!r}; known: {', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS[name](**kwargs)
