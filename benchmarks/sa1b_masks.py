"""SA-1B mask path of `shard build`, old and new side by side: full-resolution RLE -> the stored 256-px crop.

Two ways to get the crop's pixels from a compressed RLE of a 2250x1500 mask:
- decode: pycocotools decodes the full mask (3.4 MP), then the PIL-NEAREST resize + crop is one numpy gather
  (`imageops.resize_crop_masks`; the build's path until 2026-12-06);
- runs: the crop's 65k pixels are looked up in the runs (`rle.sample_rles`; the build's path now).
Both are followed by the same re-encoding, so only the part before it is timed. The masks are those of
`data synth --format sa1b` (real compressed RLE of SA-1B-like shapes). The two methods alternate per repeat in one
process; CPU time (`time.process_time`) per mask, median over repeats. The outputs are checked equal first.

Usage: python benchmarks/sa1b_masks.py [--images 4] [--masks 100] [--repeats 5] [--out /tmp/sa1b_masks]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tarfile
import time
from pathlib import Path

import numpy as np

from wam_pipe.data import rle as rle_ops
from wam_pipe.data.imageops import crop_geometry, crop_pixels, resize_crop_masks
from wam_pipe.data.synth_sa1b import write_synthetic_sa1b


def _rles(tars: list[Path]) -> list[list[dict]]:
    """Each image's list of full-resolution compressed RLEs, read from the tars' JSON members."""
    images = []
    for path in tars:
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".json"):
                    meta = json.load(tar.extractfile(member))
                    images.append([ann["segmentation"] for ann in meta["annotations"]])
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--masks", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path("/tmp/sa1b_masks"))
    args = parser.parse_args()
    if not list(args.out.glob("*.tar")):
        write_synthetic_sa1b(args.out, images=args.images, per_tar=args.images, masks=args.masks, width=2250,
                             height=1500)
    images = _rles(sorted(args.out.glob("*.tar")))
    height, width = images[0][0]["size"]
    geometry = crop_geometry(width, height, args.size)
    rows, cols = crop_pixels(geometry)

    def by_decoding(rles: list[dict]) -> np.ndarray:
        return resize_crop_masks(rle_ops.decode_rles(rles), geometry)  # (S, S, n)

    def by_runs(rles: list[dict]) -> np.ndarray:
        return rle_ops.sample_rles(rles, rows, cols)  # (S, S, n)

    for rles in images:
        assert np.array_equal(by_decoding(rles), by_runs(rles)), "the two paths disagree"
    masks = sum(len(rles) for rles in images)
    times: dict[str, list[float]] = {"decode": [], "runs": []}
    for _ in range(args.repeats):
        for name, fn in (("decode", by_decoding), ("runs", by_runs)):
            start = time.process_time()
            for rles in images:
                fn(rles)
            times[name].append((time.process_time() - start) * 1000 / masks)
    decode, runs = statistics.median(times["decode"]), statistics.median(times["runs"])
    print(f"{len(images)} images x {masks // len(images)} masks of {width}x{height} -> {args.size} px crop, "
          f"{args.repeats} repeats")
    print(f"decode + gather: {decode:.2f} CPU ms/mask")
    print(f"runs (sample_rles): {runs:.2f} CPU ms/mask  ({decode / runs:.1f}x less CPU)")


if __name__ == "__main__":
    main()
