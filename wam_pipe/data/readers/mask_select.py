"""Which instances of a sample become its watermark masks (the reference loader's behaviour).

- `union` (one watermark, K = 1): with probability `random_subset`, the union of a random subset of the instances
  (a uniform size 1..n, then that many distinct instances); otherwise the union of all of them.
- `instances` (several watermarks, K = `max_masks`): the first `max_masks` instances, one mask each, zero-padded;
  with `instance_subset`, with probability `random_subset` the first `max_masks` of a random subset in random order
  (a uniform size 1..n, then that many distinct instances) instead.
A sample without instances gives all-zero masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wam_pipe.data import rle as rle_ops

MASK_MODES = ("union", "instances")


@dataclass(frozen=True)
class MaskSelector:
    """Args:
    mode: "union" or "instances".
    max_masks: K for `instances`.
    random_subset: probability of a random subset in `union` mode (0 = always all instances), and in `instances`
        mode with `instance_subset`.
    instance_subset: draw random subsets in `instances` mode too (the reference multi-watermark loader).
    """

    mode: str = "union"
    max_masks: int = 4
    random_subset: float = 0.5
    instance_subset: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MASK_MODES:
            raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {self.mode!r}")

    @property
    def channels(self) -> int:
        """K, the mask channels of every sample."""
        return 1 if self.mode == "union" else self.max_masks

    def choose(self, count: int, rng: np.random.Generator) -> list[int]:
        """Indices of the instances to use, out of `count`."""
        if count == 0:
            return []
        subset = self.random_subset > 0 and (self.mode == "union" or self.instance_subset)
        if subset and rng.random() < self.random_subset:
            size = int(rng.integers(1, count + 1))
            picked = [int(i) for i in rng.choice(count, size=size, replace=False)]  # random order
            return sorted(picked) if self.mode == "union" else picked[: self.max_masks]
        return list(range(count if self.mode == "union" else min(count, self.max_masks)))

    def masks_from_rles(self, rles: list[dict], chosen: list[int], size: int) -> np.ndarray:
        """Stored RLEs + chosen indices -> uint8 `(K, size, size)` masks."""
        picked = [rles[i] for i in chosen]
        if self.mode == "union":
            return rle_ops.decode_union(picked, size, size)[None]  # (1, S, S)
        masks = np.zeros((self.channels, size, size), dtype=np.uint8)
        if picked:
            masks[: len(picked)] = rle_ops.decode_rles(picked).transpose(2, 0, 1)  # (S, S, n) -> (n, S, S)
        return masks
