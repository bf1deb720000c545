"""The evaluation grid: which masks and which (augmentation, strength) settings an evaluation visits.

A grid is `masks x settings`: every mask in `masks` is spliced into the watermarked image, then every setting is
applied and the extractor run. The defaults follow the reference's validation: 6 masks (5 fixed shapes + the
image's COCO instance masks) and the reference's 35 augmentation settings, frozen in `REFERENCE_GRID`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from wam_pipe.augment import AUGMENTATIONS, EVAL_STRENGTHS, representative_masks
from wam_pipe.augment._common import InvalidSetting
from wam_pipe.augment.base import Augmentation
from wam_pipe.core.errors import UserError
from wam_pipe.core.signature import signature_of

# The five fixed shapes of `representative_masks` plus the batch's own COCO masks (union of its instances).
FIXED_MASKS = ("full", "box", "box_inverted", "irregular", "irregular_inverted")
SEGM_MASK = "segm"
DEFAULT_MASKS = (*FIXED_MASKS, SEGM_MASK)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One augmentation at one strength (`strength` None for augmentations without one, e.g. identity)."""

    aug: str
    strength: float | None

    @property
    def label(self) -> str:
        """Short name for tables and plots: `rotate 30`, `identity`."""
        return self.aug if self.strength is None else f"{self.aug} {_format_strength(self.strength)}"


# The reference's 35 validation settings (docs/eval.md), frozen: registering a new augmentation (with its own eval
# strengths) does not change the default grid. crop_resize_pad's 0.7 is the middle of the reference's 0.6-0.8.
REFERENCE_GRID: tuple[Setting, ...] = tuple(
    Setting(aug, None if strength is None else float(strength))
    for aug, strengths in (
        ("identity", (None,)), ("hflip", (None,)), ("rotate", (10, 30, 45, 90)), ("resize", (0.5, 0.75)),
        ("crop", (0.5, 0.75)), ("perspective", (0.2, 0.5, 0.8)), ("crop_resize_pad", (0.7,)), ("jpeg", (40, 60, 80)),
        ("gaussian_blur", (3, 5, 9, 17)), ("median_filter", (3, 5, 9, 17)), ("brightness", (0.5, 1.5)),
        ("contrast", (0.5, 1.5)), ("saturation", (0.5, 1.5)), ("hue", (-0.5, -0.25, 0.25, 0.5)),
    )
    for strength in strengths
)


def _format_strength(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def check_masks(masks: Sequence[str], key: str = "eval.masks") -> list[str]:
    """The mask names, checked (unknown or repeated names are a UserError naming the valid ones)."""
    names = list(masks)
    if not names:
        raise UserError(f"{key}: empty; give at least one of {', '.join(DEFAULT_MASKS)}")
    for name in names:
        if name not in DEFAULT_MASKS:
            raise UserError(f"{key}: unknown mask {name!r}; known masks are {', '.join(DEFAULT_MASKS)}")
    if len(set(names)) != len(names):
        raise UserError(f"{key}: {names} names a mask twice; list each mask once")
    return names


def build_settings(augs: Mapping[str, Any] | None, key: str = "eval.augs") -> list[Setting]:
    """The augmentation settings, in configuration order.

    Args:
        augs: name -> list of strengths; a `null` value means the reference strengths of that augmentation
            (identity and hflip take none). None means the whole reference grid (`REFERENCE_GRID`, 35 settings).
    """
    if augs is None:
        return list(REFERENCE_GRID)
    if not augs:
        raise UserError(f"{key}: empty; give at least one augmentation (e.g. identity: null)")
    settings: list[Setting] = []
    for name, strengths in augs.items():
        if name not in AUGMENTATIONS:
            raise UserError(f"{key}.{name}: unknown augmentation; known: {', '.join(AUGMENTATIONS)}")
        values = EVAL_STRENGTHS[name] if strengths is None else list(strengths)
        if not values:
            raise UserError(f"{key}.{name}: empty list; give strengths or null for the reference ones")
        needs_strength = EVAL_STRENGTHS[name] != (None,)
        if not needs_strength and any(v is not None for v in values):
            raise UserError(f"{key}.{name}: takes no strength; write `{name}: null`")
        for value in values:
            if needs_strength and value is None:
                raise UserError(f"{key}.{name}: needs numeric strengths, e.g. {list(EVAL_STRENGTHS[name])}")
            settings.append(Setting(name, None if not needs_strength else float(value)))
    return settings


def build_augmentations(settings: Sequence[Setting], aug_args: Mapping[str, Mapping[str, Any]] | None = None,
                        key: str = "eval.aug_args") -> dict[str, Augmentation]:
    """One augmentation object per name in `settings`, built with its default constructor or with the keyword
    arguments `aug_args[name]` (e.g. `{"median_filter": {"algorithm": "reference"}}`).

    Raises:
        UserError: a name of `aug_args` that is not in the grid, an argument the augmentation does not take, or a
            value it refuses, naming `eval.aug_args.<name>[.<argument>]`.
    """
    aug_args = dict(aug_args or {})
    names = list(dict.fromkeys(setting.aug for setting in settings))
    for name, kwargs in aug_args.items():
        if name not in names:
            raise UserError(f"{key}.{name}: not in the grid (it has {', '.join(names)}); add {name} to eval.augs "
                            f"or remove it here")
        if not isinstance(kwargs, Mapping):
            raise UserError(f"{key}.{name}: expected a mapping of constructor arguments, e.g. "
                            f"{{median_filter: {{algorithm: reference}}}}, got {kwargs!r}")
        takes = list(signature_of(AUGMENTATIONS[name]).params)
        for arg in kwargs:
            if arg not in takes:
                raise UserError(f"{key}.{name}.{arg}: {name} takes no argument {arg!r}; it takes {', '.join(takes)}")
    built: dict[str, Augmentation] = {}
    for name in names:
        try:
            built[name] = AUGMENTATIONS[name](**dict(aug_args.get(name, {})))
        except InvalidSetting as err:
            raise UserError(f"{key}.{name}.{err.key}: {err.problem}") from None
    return built


@dataclasses.dataclass
class Grid:
    """Masks x settings, with the augmentation objects built once (cheap, CPU-only constructors).

    `aug_args` holds constructor arguments per augmentation name (`build_augmentations`); the others are built with
    their defaults."""

    masks: list[str]
    settings: list[Setting]
    aug_args: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    augmentations: dict[str, Augmentation] = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.augmentations = build_augmentations(self.settings, self.aug_args)

    @property
    def cells(self) -> list[tuple[str, Setting]]:
        """Every (mask, setting) pair, mask-major: the row order of `metrics.json`."""
        return [(mask, setting) for mask in self.masks for setting in self.settings]

    def apply(self, setting: Setting, imgs: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply one setting to images `(B, 3, H, W)` and masks `(B, K, H, W)` (deterministic)."""
        return self.augmentations[setting.aug].apply(imgs, masks, setting.strength)


def batch_masks(names: Sequence[str], segm: torch.Tensor, fixed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each named mask as `(B, 1, H, W)` float 0/1 for a batch whose loader masks are `segm` `(B, K, H, W)`.

    The fixed shapes are shared by the batch; `segm` is each image's union of instances (all zero when the image
    has no annotation: that image then carries no watermark for this mask).
    """
    batch = segm.shape[0]
    out = {}
    for name in names:
        if name == SEGM_MASK:
            out[name] = (segm > 0).amax(dim=1, keepdim=True).float()  # (B, 1, H, W) union of instances
        else:
            out[name] = fixed[name].expand(batch, -1, -1, -1).contiguous()  # (B, 1, H, W)
    return out


def fixed_masks(height: int, width: int, device: torch.device) -> dict[str, torch.Tensor]:
    """The five fixed evaluation shapes `(1, 1, H, W)` for images of this size (identical in every run)."""
    return representative_masks(height, width, device)
