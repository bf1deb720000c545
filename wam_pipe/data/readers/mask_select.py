"""Which instances of a sample become its watermark masks (the reference loader's behaviour).

- `union` (one watermark, K = 1): with probability `random_subset`, the union of a random subset of the instances
  (a uniform size 1..n, then that many distinct instances); otherwise the union of all of them.
- `instances` (several watermarks, K = `max_masks`): the first `max_masks` instances, one mask each, zero-padded.
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
    random_subset: probability of a random subset in `union` mode (0 = always all instances).
    """

    mode: str = "union"
    max_masks: int = 4
    random_subset: float = 0.5

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
        if self.mode == "instances":
            return list(range(min(count, self.max_masks)))
        if self.random_subset > 0 and rng.random() < self.random_subset:
            size = int(rng.integers(1, count + 1))
            return sorted(int(i) for i in rng.choice(count, size=size, replace=False))
        return list(range(count))

    def masks_from_rles(self, rles: list[dict], chosen: list[int], size: int) -> np.ndarray:
        """Stored RLEs + chosen indices -> uint8 `(K, size, size)` masks."""
        picked = [rles[i] for i in chosen]
        if self.mode == "union":
            return rle_ops.decode_union(picked, size, size)[None]  # (1, S, S)
        masks = np.zeros((self.channels, size, size), dtype=np.uint8)
        if picked:
            masks[: len(picked)] = rle_ops.decode_rles(picked).transpose(2, 0, 1)  # (S, S, n) -> (n, S, S)
        return masks
