"""CPU cost of the RLE check every stored mask goes through before pycocotools (issue 11), next to pycocotools'
own decode of the same mask. 64 rectangle masks at 256 px (compressed counts of ~100 characters).

    PYTHONPATH=. python benchmarks/rle_check.py
"""

from __future__ import annotations

import time

import numpy as np
from pycocotools import mask as mask_utils

from wam_pipe.data import rle as rle_ops


def main() -> None:
    rng = np.random.default_rng(0)
    masks = np.zeros((256, 256, 64), dtype=np.uint8)
    for i in range(64):
        y, x, h, w = rng.integers(0, 200, 4)
        masks[y:y + 20 + h % 50, x:x + 20 + w % 50, i] = 1
    rles = rle_ops.encode_masks(masks)

    def per_mask_us(fn, repeats: int = 20) -> float:
        start = time.process_time()
        for _ in range(repeats):
            for rle in rles:
                fn(rle)
        return (time.process_time() - start) / (repeats * len(rles)) * 1e6

    check = per_mask_us(lambda r: rle_ops.check_rle(r, 256, 256))
    decode = per_mask_us(mask_utils.decode)
    length = np.mean([len(r["counts"]) for r in rles])
    print(f"check_rle {check:.1f} us/mask CPU, pycocotools decode {decode:.1f} us/mask CPU, "
          f"ratio {check / decode:.2f} (counts of {length:.0f} characters)")


if __name__ == "__main__":
    main()
