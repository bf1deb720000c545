"""Geometric augmentations: the masks move exactly as the image does, and the output keeps the input size.

Images are resampled bilinearly (antialiased when shrinking) and masks with nearest neighbours, so masks stay 0/1.
Areas that come from outside the picture are 0 in model space (the mean colour) and unmarked in the masks. Unlike
the value edits, geometric edits do not clamp: the extractor may see out-of-range values, as in the reference.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from wam_pipe.augment._common import (
    InvalidSetting,
    Pair,
    check_range,
    per_sample_map,
    randint,
    resize_images,
    to_device,
    uniform,
)
from wam_pipe.augment.base import Augmentation, Params, require_strength
from wam_pipe.augment.registry import register_augmentation
from wam_pipe.augment.warp import image_corners, perspective_matrices, rotation_matrices, warp
from wam_pipe.core.imaging import from_unit, resize_masks

# The eval grid's perspective corners: a fixed draw, so that `apply` is deterministic yet a real perspective
# (equal corner shifts would only zoom out).
_FIXED_CORNER_SEED = 0


@register_augmentation("identity")
class Identity(Augmentation):
    """No edit. `strength` is ignored.

    Args:
        weight: relative probability of being picked (default 1.0).
    """

    geometric = True

    def transform(self, imgs: torch.Tensor, masks: torch.Tensor, params: Params) -> Pair:
        return imgs, masks


@register_augmentation("hflip")
class HorizontalFlip(Augmentation):
    """Mirror left-right. `strength` is ignored.

    Args:
        weight: relative probability of being picked (default 1.0).
    """

    geometric = True

    def transform(self, imgs: torch.Tensor, masks: torch.Tensor, params: Params) -> Pair:
        return imgs.flip(-1), masks.flip(-1)


@register_augmentation("rotate", eval_strengths=(10, 30, 45, 90))
class Rotate(Augmentation):
    """Rotate about the centre, counter-clockwise, without expanding; corners are filled with the mean colour.

    `strength` = the angle in degrees. The image is sampled bilinearly (the reference used nearest neighbours).

    Args:
        weight: relative probability of being picked (default 1.0).
        degrees: `[min, max]` training range of the angle (default [-10, 10]).
        integer_angles: draw whole degrees uniformly in the range, as the reference (default False: real angles).
        interpolation: "bilinear" or "nearest" (the reference) sampling of the image; masks are always nearest
            (default "bilinear").
    """

    geometric = True

    def __init__(self, weight: float = 1.0, degrees: list[float] = (-10.0, 10.0), integer_angles: bool = False,
                 interpolation: str = "bilinear") -> None:
        super().__init__(weight)
        self.degrees = check_range(self.name, "degrees", degrees)
        self.integer_angles = bool(integer_angles)
        if interpolation not in ("bilinear", "nearest"):
            raise InvalidSetting(self.name, "interpolation", f"must be bilinear or nearest, got {interpolation!r}")
        self.interpolation = interpolation

    def sample_params(self, n: int, batch: int, height: int, width: int) -> Params:
        if self.integer_angles:
            low, high = math.ceil(self.degrees[0]), math.floor(self.degrees[1])
            if low > high:
                raise InvalidSetting(self.name, "degrees", f"{list(self.degrees)} holds no whole degree")
            return {"degrees": randint(low, high, n).to(torch.float64)}
        return {"degrees": uniform(*self.degrees, n)}

    def fixed_params(self, strength: float | None, batch: int, height: int, width: int) -> Params:
        return {"degrees": torch.tensor([require_strength(self.name, strength)], dtype=torch.float64)}

    def transform(self, imgs: torch.Tensor, masks: torch.Tensor, params: Params) -> Pair:
        matrices = rotation_matrices(params["degrees"], imgs.shape[-2], imgs.shape[-1])
        return warp(imgs, masks, matrices, self.interpolation)


@register_augmentation("resize", eval_strengths=(0.5, 0.75))
class Resize(Augmentation):
    """Shrink or enlarge, then resize back to the input size: a resampling blur that keeps the geometry.

    `strength` = the scale factor of both sides (0.5 halves them). Training draws each side's factor separately.

    Args:
        weight: relative probability of being picked (default 1.0).
        scale: `[min, max]` training range of the per-side factor (default [0.7, 1.5]).
    """

    geometric = True

    def __init__(self, weight: float = 1.0, scale: list[float] = (0.7, 1.5)) -> None:
        super().__init__(weight)
        self.scale = check_range(self.name, "scale", scale, low=1e-3)

    def sample_params(self, n: int, batch: int, height: int, width: int) -> Params:
        return {"scale_h": uniform(*self.scale, n), "scale_w": uniform(*self.scale, n)}

    def fixed_params(self, strength: float | None, batch: int, height: int, width: int) -> Params:
        s = torch.tensor([require_strength(self.name, strength)], dtype=torch.float64)
        return {"scale_h": s, "scale_w": s.clone()}

    def transform(self, imgs: torch.Tensor, masks: torch.Tensor, params: Params) -> Pair:
        height, width = imgs.shape[-2:]

        def one(x: torch.Tensor, m: torch.Tensor, i: int) -> Pair:
            h = max(1, round(height * float(params["scale_h"][i])))
            w = max(1, round(width * float(params["scale_w"][i])))
            x = resize_images(resize_images(x, h, w), height, width)
            m = resize_masks(resize_masks(m, (h, w)), (height, width))
            return x, m

        return per_sample_map(one, imgs, masks, params["scale_h"].shape[0])


@register_augmentation("crop", eval_strengths=(0.5, 0.75))
class Crop(Augmentation):
    """Keep a window and resize it back to the input size (a zoom); the masks are cropped identically.

    `strength` = the kept fraction of each side (0.5 keeps a quarter of the area), centred. Training draws each side's
    fraction separately and places the window at random.

    Args:
        weight: relative probability of being picked (default 1.0).
        size: `[min, max]` training range of the kept fraction of a side (default [0.33, 1.0]).
    """

    geometric = True

    def __init__(self, weight: float = 1.0, size: list[float] = (0.33, 1.0)) -> None:
        super().__init__(weight)
        self.size = check_range(self.name, "size", size, low=1e-3, high=1.0)

    def sample_params(self, n: int, batch: int, height: int, width: int) -> Params:
        return {"frac_h": uniform(*self.size, n), "frac_w": uniform(*self.size, n),
                "pos_y": uniform(0.0, 1.0, n), "pos_x": uniform(0.0, 1.0, n)}

    def fixed_params(self, strength: float | None, batch: int, height: int, width: int) -> Params:
        s = min(1.0, require_strength(self.name, strength))
        return {"frac_h": torch.tensor([s], dtype=torch.float64), "frac_w": torch.tensor([s], dtype=torch.float64),
                "pos_y": torch.tensor([0.5], dtype=torch.float64), "pos_x": torch.tensor([0.5], dtype=torch.float64)}

    def transform(self, imgs: torch.Tensor, masks: torch.Tensor, params: Params) -> Pair:
        height, width = imgs.shape[-2:]

        def one(x: torch.Tensor, m: torch.Tensor, i: int) -> Pair:
            h = min(height, max(1, round(height * float(params["frac_h"][i]))))
            w = min(width, max(1, round(width * float(params["frac_w"][i]))))
            top = round(float(params["pos_y"][i]) * (height - h))
            left = round(float(params["pos_x"][i]) * (width - w))
            x = resize_images(x[..., top : top + h, left : left + w], height, width)
            m = resize_masks(m[..., top : top + h, left : left + w], (height, width))
            return x, m

        return per_sample_map(one, imgs, masks, params["frac_h"].shape[0])


@register_augmentation("perspective", eval_strengths=(0.2, 0.5, 0.8))
class Perspective(Augmentation):
    """Move each corner inwards by up to `distortion` x half the side, as torchvision's RandomPerspective.

    `strength` = the distortion scale (0 = none, 1 = corners may reach the centre lines); the eval grid uses a fixed
    draw of the corner shifts, so it is deterministic.

    Args:
        weight: relative probability of being picked (default 1.0).
        distortion: `[min, max]` training range of the distortion scale (default [0.1, 0.5]).
    """

    geometric = True

    def __init__(self, weight: float = 1.0, distortion: list[float] = (0.1, 0.5)) -> None:
        super().__init__(weight)
        self.distortion = check_range(self.name, "distortion", distortion, low=0.0, high=1.0)

    def sample_params(self, n: int, batch: int, height: int, width: int) -> Params:
        return {"distortion": uniform(*self.distortion, n), "shifts": torch.rand(n, 4, 2, dtype=torch.float64)}

    def fixed_params(self, strength: float | None, batch: int, height: int, width: int) -> Params:
        generator = torch.Generator().manual_seed(_FIXED_CORNER_SEED)
        shifts = torch.rand(1, 4, 2, generator=generator, dtype=torch.float64)
        return {"distortion": torch.tensor([require_strength(self.name, strength)], dtype=torch.float64),
                "shifts": shifts}

    def transform(self, imgs: torch.Tensor, masks: torch.Tensor, params: Params) -> Pair:
        height, width = imgs.shape[-2:]
        source = image_corners(height, width).expand(params["shifts"].shape[0], 4, 2)  # (n, 4, 2)
        half = torch.tensor([width / 2.0, height / 2.0], dtype=torch.float64)
        inward = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]], dtype=torch.float64)
        offsets = params["shifts"] * params["distortion"].view(-1, 1, 1) * half * inward  # (n, 4, 2)
        return warp(imgs, masks, perspective_matrices(source, source + offsets))


@register_augmentation("crop_resize_pad", eval_strengths=(0.7,))
class CropResizePad(Augmentation):
    """Resize, crop a part, and paste it on a solid-colour canvas of the input size; masks are zero-padded.

    Training: each side is resized by a factor in `resize` (no antialias, as the reference), a window of `crop`
    of the resized sides is cut at random and pasted at a random position on a random colour (one per image).

    Evaluation (`apply(strength=s)`), by `eval_setting`:
      - "centred" (default): resize both sides by s, keep the central s-fraction of the result and paste it at the
        centre of a black canvas (the content spans s^2 of each side). Nothing random: the same image always gives
        the same result, whatever the batch.
      - "reference": the reference's validation setting, whose one entry `(0.6, 0.8, 0.6, 0.8)` (resize_h,
        resize_w, crop_h, crop_w) is our strength 0.7: heights use s - 0.1 and widths s + 0.1, sizes truncated to
        whole pixels as the reference does; the crop and paste positions (one per batch) and the canvas colour (one
        per image, uniform in RGB) are drawn as the reference draws them, from a generator seeded afresh on each
        call (the reference's draw is unseeded; ours repeats, so two evaluations of one model agree).

    Args:
        weight: relative probability of being picked (default 1.0; the reference recipe uses 2).
        resize: `[min, max]` training range of the per-side resize factor (default [0.7, 1.5]).
        crop: `[min, max]` training range of the kept fraction of the resized sides (default [0.5, 0.66]).
        eval_setting: "centred" or "reference", see above (default "centred"; in a pipeline:
            `stages.eval.aug_args: {crop_resize_pad: {eval_setting: reference}}`).
    """

    geometric = True
    EVAL_SETTINGS = ("centred", "reference")

    def __init__(self, weight: float = 1.0, resize: list[float] = (0.7, 1.5),
                 crop: list[float] = (0.5, 0.66), eval_setting: str = "centred") -> None:
        super().__init__(weight)
        self.resize = check_range(self.name, "resize", resize, low=1e-3)
        self.crop = check_range(self.name, "crop", crop, low=1e-3, high=1.0)
        if eval_setting not in self.EVAL_SETTINGS:
            raise InvalidSetting(self.name, "eval_setting",
                                 f"unknown setting {eval_setting!r}; use {' or '.join(self.EVAL_SETTINGS)}")
        self.eval_setting = eval_setting

    def sample_params(self, n: int, batch: int, height: int, width: int) -> Params:
        params = {key: uniform(*self.resize, n) for key in ("resize_h", "resize_w")}
        params.update({key: uniform(*self.crop, n) for key in ("crop_h", "crop_w")})
        params.update({key: uniform(0.0, 1.0, n) for key in ("crop_y", "crop_x", "paste_y", "paste_x")})
        params["colour"] = torch.rand(batch, 3, dtype=torch.float64)  # pixel space, one per image
        return params

    def fixed_params(self, strength: float | None, batch: int, height: int, width: int) -> Params:
        if self.eval_setting == "reference":
            return _reference_eval_params(require_strength(self.name, strength), batch, height, width)
        s = torch.tensor([require_strength(self.name, strength)], dtype=torch.float64)
        half = torch.tensor([0.5], dtype=torch.float64)
        params = {key: s.clone() for key in ("resize_h", "resize_w", "crop_h", "crop_w")}
        params.update({key: half.clone() for key in ("crop_y", "crop_x", "paste_y", "paste_x")})
        params["colour"] = torch.zeros(batch, 3, dtype=torch.float64)
        return params

    def transform(self, imgs: torch.Tensor, masks: torch.Tensor, params: Params) -> Pair:
        if params["resize_h"].shape[0] == 1:
            content, out_masks, inside = _resize_crop_paste(imgs, masks, params, 0)
        else:
            parts = [_resize_crop_paste(imgs[i : i + 1], masks[i : i + 1], params, i) for i in range(imgs.shape[0])]
            content, out_masks, inside = (torch.cat([part[j] for part in parts]) for j in range(3))
        colour = from_unit(to_device(params["colour"], imgs).view(-1, 3, 1, 1))  # (B, 3, 1, 1) model space
        return content + (1.0 - inside) * colour, out_masks


# The reference's validation draws are unseeded; ours come from this seed, set afresh on every call.
_REFERENCE_EVAL_SEED = 0


def _reference_eval_params(strength: float, batch: int, height: int, width: int) -> Params:
    """CropResizePad's "reference" evaluation: sizes `(s - 0.1, s + 0.1, s - 0.1, s + 0.1)` of (resize_h, resize_w,
    crop_h, crop_w), truncated to whole pixels as the reference's `int(...)`, with its random positions and colours.

    The factors are stored as exact pixel ratios (`int(f * side) / side`) so that `_resize_crop_paste`'s rounding
    lands on the reference's truncated sizes.
    """
    low, high = strength - 0.1, strength + 0.1
    if low <= 0:
        raise InvalidSetting("crop_resize_pad", "eval_setting",
                             f"reference: strength {strength:g} gives a height factor {low:g} <= 0; use a strength > 0.1")
    generator = torch.Generator().manual_seed(_REFERENCE_EVAL_SEED)
    rh, rw = max(1, int(low * height)), max(1, int(high * width))  # resized sides
    h, w = min(rh, max(1, int(low * rh))), min(rw, max(1, int(high * rw)))  # crop window
    h, w = min(h, height), min(w, width)

    def position(slack: int) -> torch.Tensor:  # an integer uniform in 0..slack, as a fraction of the slack
        offset = int(torch.randint(0, slack + 1, (1,), generator=generator)) if slack > 0 else 0
        return torch.tensor([offset / slack if slack > 0 else 0.5], dtype=torch.float64)

    def ratio(part: int, whole: int) -> torch.Tensor:
        return torch.tensor([part / whole], dtype=torch.float64)

    # Draw order as the reference: crop position (RandomCrop), then paste position, then the colours.
    params = {"resize_h": ratio(rh, height), "resize_w": ratio(rw, width), "crop_h": ratio(h, rh),
              "crop_w": ratio(w, rw), "crop_y": position(rh - h), "crop_x": position(rw - w),
              "paste_y": position(height - h), "paste_x": position(width - w)}
    params["colour"] = torch.rand(batch, 3, generator=generator, dtype=torch.float64)  # pixel space, one per image
    return params


def _resize_crop_paste(imgs: torch.Tensor, masks: torch.Tensor, params: Params,
                       i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CropResizePad's window for parameter set `i`: (content zero-padded to the input size, masks, window map)."""
    height, width = imgs.shape[-2:]

    def p(key: str) -> float:
        return float(params[key][i])

    rh, rw = max(1, round(height * p("resize_h"))), max(1, round(width * p("resize_w")))
    h, w = min(height, max(1, round(rh * p("crop_h")))), min(width, max(1, round(rw * p("crop_w"))))
    top, left = round(p("crop_y") * (rh - h)), round(p("crop_x") * (rw - w))
    x = resize_images(imgs, rh, rw, antialias=False)[..., top : top + h, left : left + w]
    m = resize_masks(masks, (rh, rw))[..., top : top + h, left : left + w]
    py, px = round(p("paste_y") * (height - h)), round(p("paste_x") * (width - w))
    pad = (px, width - w - px, py, height - h - py)  # (left, right, top, bottom): places the window on the canvas
    inside = F.pad(torch.ones_like(x[:, :1]), pad)  # (b, 1, H, W): 1 where the window lands
    return F.pad(x, pad), F.pad(m, pad), inside
