"""Helpers shared by the augmentations and mask generators: CPU random draws, sync-free copies, resizing.

Every random parameter is drawn from torch's global **CPU** generator (seeded per rank by the runner and saved in
checkpoints), so sampling never waits for the training device. Small parameter tensors reach the device through
`to_device`, which uses pinned memory and a non-blocking copy on CUDA: a plain `.to("cuda")` of pageable memory
synchronizes the stream.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from wam_pipe.core.signature import instance_for_check


class InvalidSetting(ValueError):
    """A configuration value out of its allowed range; `key` is relative to the component (`degrees`, `box`)."""

    def __init__(self, owner: str, key: str, problem: str) -> None:
        self.owner, self.key, self.problem = owner, key, problem
        super().__init__(f"{owner}.{key}: {problem}" if key else f"{owner}: {problem}")


def config_problems(cls: type, node: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The `check_config` hook of `wam-pipe validate`: build `cls` from a YAML node (constructors are cheap) and
    report an `InvalidSetting` as `(key, problem)`. Wrong types and unresolved values are left to the signature
    check, which reports them already."""
    try:
        instance_for_check(cls, node)  # None on wrong types (a TypeError)
    except InvalidSetting as err:
        return [(err.key, err.problem)]
    except ValueError:  # unresolved values: the signature check reports them
        pass
    return []


def uniform(low: float, high: float, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """`n` floats drawn uniformly in `[low, high]` on the CPU, float64 `(n,)`."""
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def randint(low: int, high: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """`n` integers drawn uniformly in `[low, high]` (both included) on the CPU, int64 `(n,)`."""
    return torch.randint(int(low), int(high) + 1, (n,), generator=generator)


def choice(weights: Sequence[float], generator: torch.Generator | None = None) -> int:
    """Index drawn with probability proportional to `weights` (non-negative, positive sum)."""
    probs = torch.as_tensor([float(w) for w in weights], dtype=torch.float64)
    return int(torch.multinomial(probs, 1, generator=generator)[0])


def coin(probability: float, generator: torch.Generator | None = None) -> bool:
    """True with `probability`."""
    return bool(torch.rand(1, generator=generator, dtype=torch.float64)[0] < probability)


def to_device(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Copy a small CPU parameter tensor to `like`'s device (and float dtype) without blocking the host.

    Args:
        values: a CPU tensor (random parameters, kernels, matrices).
        like: a tensor on the target device; its dtype is used when both are floating point.
    """
    if values.is_floating_point() and like.is_floating_point():
        values = values.to(like.dtype)
    if like.device.type == "cpu":
        return values
    if like.device.type == "cuda":
        # Pageable -> device copies synchronize the stream; pinned + non_blocking does not.
        values = values.pin_memory()
    return values.to(like.device, non_blocking=True)


def check_range(owner: str, key: str, value: Sequence[float], low: float | None = None,
                high: float | None = None) -> tuple[float, float]:
    """Validate a `[min, max]` config pair and return it as floats.

    Raises:
        InvalidSetting: `owner.key: ...` when it is not two numbers in order or leaves `[low, high]`.
    """
    pair = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if len(pair) != 2:
        raise InvalidSetting(owner, key, f"expected [min, max], got {value!r}")
    lo, hi = float(pair[0]), float(pair[1])
    if lo > hi:
        raise InvalidSetting(owner, key, f"min {lo:g} is larger than max {hi:g}; write [min, max]")
    if (low is not None and lo < low) or (high is not None and hi > high):
        bounds = f"[{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}]"
        raise InvalidSetting(owner, key, f"[{lo:g}, {hi:g}] leaves the allowed range {bounds}")
    return lo, hi


def resize_images(imgs: torch.Tensor, height: int, width: int, antialias: bool = True) -> torch.Tensor:
    """Bilinear resize of `(B, C, H, W)` images (antialiased when shrinking, as the reference)."""
    if imgs.shape[-2:] == (height, width):
        return imgs
    return F.interpolate(imgs, size=(height, width), mode="bilinear", align_corners=False, antialias=antialias)


def as_float_masks(masks: torch.Tensor, imgs: torch.Tensor) -> torch.Tensor:
    """Masks as floats of the images' dtype (grid sampling and interpolation need floating point)."""
    return masks if masks.dtype == imgs.dtype else masks.to(imgs.dtype)


def straight_through(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """`y` in the forward pass, identity gradient to `x` (for non-differentiable JPEG and median)."""
    return x + (y - x).detach()


Pair = tuple[torch.Tensor, torch.Tensor]


def per_sample_map(fn: Callable[[torch.Tensor, torch.Tensor, int], Pair], imgs: torch.Tensor,
                   masks: torch.Tensor, n_params: int) -> Pair:
    """Run `fn(imgs_i, masks_i, i)` on each sample when there are per-sample parameters, else once for all.

    Used by augmentations whose per-sample parameters change intermediate shapes (resize, crop), which cannot be
    batched. The loop bounds come from CPU numbers only.
    """
    if n_params == 1:
        return fn(imgs, masks, 0)
    outs = [fn(imgs[i : i + 1], masks[i : i + 1], i) for i in range(imgs.shape[0])]
    return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
