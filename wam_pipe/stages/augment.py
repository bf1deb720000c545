"""The `augment` stage: watermark masks, cover jitter and one augmentation per batch, on the training device.

The step stage calls it three times per training step:

    masks = augment.sample_masks(batch_masks)           # (B, K, H, W) watermark masks
    covers = augment.jitter(images)                     # cover images before embedding
    imgs_aug, masks_aug, name = augment(imgs_w, masks)  # after splicing, before the extractor

Every random choice is drawn from torch's CPU generator, so none of these calls waits for the GPU (JPEG on CUDA is
the exception: see `wam_pipe.augment.jpeg`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from wam_pipe.augment import AUGMENTATIONS, ColorJitter, Identity, MaskSampler
from wam_pipe.augment._common import InvalidSetting, choice
from wam_pipe.augment.base import Augmentation
from wam_pipe.core.signature import signature_of
from wam_pipe.core.targets import TargetError, import_target


class Augment:
    """Sample watermark masks and apply one augmentation per batch, picked by weight (`wam_pipe.stages.Augment`).

    Args:
        masks: the mask sampler (default: `MaskSampler()` with the reference's pre-training probabilities).
        augs: name -> augmentation; one is picked per batch with probability proportional to its `weight`. A `null`
            entry is skipped; none at all means identity only (default).
        cover_jitter: colour jitter of the cover images before embedding (default None: no jitter).
        per_sample: draw the augmentation's strength for every image instead of once per batch (default False;
            the reference draws once per batch).
    """

    def __init__(self, masks: MaskSampler | None = None, augs: dict[str, Augmentation | None] | None = None,
                 cover_jitter: ColorJitter | None = None, per_sample: bool = False) -> None:
        self.masks = masks if masks is not None else MaskSampler()
        self.cover_jitter = cover_jitter
        self.per_sample = bool(per_sample)
        self.augs = _checked_augs(augs)
        self._weights = [aug.weight for aug in self.augs.values()]

    @classmethod
    def check_config(cls, node: dict) -> list[tuple[str, str]]:
        """`wam-pipe validate`: the augmentation weights must not all be 0 (each entry checks its own ranges)."""
        augs = node.get("augs")
        if not isinstance(augs, Mapping):
            return []
        weights = [_configured_weight(child) for child in augs.values() if child is not None]
        problem = _all_zero(list(augs), weights) if None not in weights else None
        problems = [("augs", problem)] if problem else []
        for name, child in augs.items():
            misnamed = _name_problem(name, _target_class(child))
            if misnamed:
                problems.append((f"augs.{name}", misnamed))
        return problems

    @property
    def names(self) -> list[str]:
        """The augmentation names, in configuration order."""
        return list(self.augs)

    @property
    def weights(self) -> dict[str, float]:
        """Name -> weight (not normalized)."""
        return dict(zip(self.augs, self._weights))

    @property
    def multiple(self) -> bool:
        """Whether masks carry several watermarks (mirrors `masks.multiple`)."""
        return self.masks.multiple

    def sample_masks(self, segm: torch.Tensor) -> torch.Tensor:
        """Watermark masks `(B, K, H, W)` float on `segm`'s device from the loader's masks `(B, Ks, H, W)`."""
        return self.masks(segm)

    def jitter(self, imgs: torch.Tensor) -> torch.Tensor:
        """Colour-jitter the cover images `(B, 3, H, W)` (model space); unchanged without `cover_jitter`."""
        return imgs if self.cover_jitter is None else self.cover_jitter(imgs)

    def __call__(self, imgs: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, str]:
        """Pick one augmentation by weight and apply it to images `(B, 3, H, W)` and masks `(B, K, H, W)`.

        Returns:
            The augmented images and masks (same shapes) and the name of the augmentation applied.
        """
        name = self.names[choice(self._weights)]
        imgs_aug, masks_aug = self.augs[name](imgs, masks, per_sample=self.per_sample)
        return imgs_aug, masks_aug, name

    def __repr__(self) -> str:
        augs = ", ".join(f"{name}={aug.weight:g}" for name, aug in self.augs.items())
        return f"Augment(masks={self.masks!r}, augs={{{augs}}}, cover_jitter={self.cover_jitter!r}, " \
               f"per_sample={self.per_sample})"


def _checked_augs(augs: Mapping[str, Augmentation | None] | None) -> dict[str, Augmentation]:
    """The configured augmentations without `null` entries; identity alone when none is given."""
    checked: dict[str, Augmentation] = {}
    for name, aug in (augs or {}).items():
        if aug is None:
            continue
        weight = getattr(aug, "weight", None)
        if not callable(aug) or not isinstance(weight, (int, float)):
            raise InvalidSetting("augs", str(name), "expected an augmentation (a `_target_: "
                                 f"wam_pipe.augment.<Class>` node), got {type(aug).__name__}")
        if not weight >= 0:
            raise InvalidSetting("augs", f"{name}.weight", f"must be >= 0, got {weight}")
        misnamed = _name_problem(name, type(aug))
        if misnamed:
            raise InvalidSetting("augs", str(name), misnamed)
        checked[str(name)] = aug
    if not checked:
        return {"identity": Identity()}
    problem = _all_zero(list(checked), [aug.weight for aug in checked.values()])
    if problem:
        raise InvalidSetting("augs", "", problem)
    return checked


def _all_zero(names: list[Any], weights: list[float]) -> str | None:
    """The rule on weights as a whole (validation and construction alike): at least one must be positive."""
    if weights and sum(weights) <= 0:
        return f"every weight is 0 ({', '.join(map(str, names))}); give one a positive weight"
    return None


def _name_problem(name: Any, cls: Any) -> str | None:
    """A registered augmentation is named as the registry and the eval grid name it (`gaussian_blur`, not `blur`),
    so a training log and an eval table say the same thing. Other (custom) augmentations may take any name."""
    registered = getattr(cls, "name", None)
    if not isinstance(registered, str) or AUGMENTATIONS.get(registered) is not cls or name == registered:
        return None
    return (f"unknown augmentation name {str(name)!r} (did you mean {registered!r}?); entries are named as in the "
            f"registry and the eval grid, and {cls.__name__} is {registered!r}")


def _target_class(node: Any) -> Any:
    """The class a YAML `augs` entry names, or None (not a node, or a target the validator reports)."""
    if not isinstance(node, Mapping) or "_target_" not in node:
        return None
    try:
        return import_target(node["_target_"])
    except TargetError:  # reported by the validator itself
        return None


def _configured_weight(node: Any) -> float | None:
    """The weight an `augs` entry of a YAML node will have (its default when not written), or None if unknown."""
    if not isinstance(node, Mapping) or "_target_" not in node:
        return None
    if "weight" in node:
        return node["weight"] if isinstance(node["weight"], (int, float)) else None
    target = _target_class(node)
    if target is None:
        return None
    sig = signature_of(target)
    param = sig.params.get("weight") if sig else None
    return None if param is None or param.required else float(param.default)
