"""The augmentation registry: name -> class and name -> evaluation strengths, filled by `@register_augmentation`.

Each augmentation class registers itself where it is defined, in the manner of timm's `register_model`:

    @register_augmentation("gaussian_blur", eval_strengths=(3, 5, 9, 17))
    class GaussianBlur(ValuemetricAugmentation): ...

The name is the key a pipeline uses under `stages.augment.augs` and the `aug` column of the eval grid; the eval
strengths are what `eval.augs: {name: null}` evaluates. Importing `wam_pipe.augment` imports every augmentation
module, so the registry is complete once that package is imported. The default eval grid is *not* derived from
here: it is the frozen `wam_pipe.eval.grid.REFERENCE_GRID`, so registering an augmentation never changes it.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from wam_pipe.augment.base import Augmentation

AUGMENTATIONS: dict[str, type[Augmentation]] = {}
# The evaluation strengths of each augmentation (`(None,)`: it takes no strength). The meaning of a strength is
# documented on each class.
EVAL_STRENGTHS: dict[str, tuple[float | None, ...]] = {}

A = TypeVar("A", bound=type[Augmentation])


def register_augmentation(name: str, eval_strengths: tuple[float | None, ...] = (None,)) -> Callable[[A], A]:
    """Class decorator: register an augmentation under `name` (sets `cls.name`) with its eval strengths."""
    strengths = tuple(eval_strengths)
    if not strengths or (None in strengths and strengths != (None,)):
        raise ValueError(f"register_augmentation({name!r}): eval_strengths must be numbers, or (None,) for none")

    def register(cls: A) -> A:
        if name in AUGMENTATIONS and AUGMENTATIONS[name] is not cls:
            raise ValueError(f"register_augmentation: {name!r} is taken by {AUGMENTATIONS[name].__qualname__}")
        cls.name = name
        AUGMENTATIONS[name] = cls
        EVAL_STRENGTHS[name] = strengths
        return cls

    return register


def build_augmentation(name: str, **kwargs: object) -> Augmentation:
    """An augmentation by registry name, e.g. `build_augmentation("rotate", degrees=[-5, 5])`."""
    if name not in AUGMENTATIONS:
        raise KeyError(f"unknown augmentation {name!r}; known: {', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS[name](**kwargs)
