"""SA-1B build cost per worker on SA-1B-sized images, and per-image shard bytes; projects a full SA-1B build.

Writes synthetic SA-1B-style tars (`data synth --format sa1b`: 1500x2250 JPEGs, ~100 masks each as compressed RLE,
like SA-1B's), lists them (headers only), then builds them with one worker (in-process, so CPU time is this
process's) in three settings: all masks, `--max-masks 16`, and no masks (`--max-masks 0`: image work alone). Prints
CPU ms/image, img/s per worker, shard bytes per image, and the projection for 1,000 tars of 11k images.

Usage: python benchmarks/sa1b_build.py [--images 12] [--per-tar 6] [--masks 100] [--out /tmp/sa1b_bench] [--reuse]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from wam_pipe.data.sa1b_index import list_sa1b_tars
from wam_pipe.data.shards.build import build_shards
from wam_pipe.data.shards.build_state import BuildConfig
from wam_pipe.data.synth_sa1b import write_synthetic_sa1b

SA1B_TARS, SA1B_PER_TAR = 1000, 11_000


def _build(tars: list[Path], out: Path, max_masks: int | None) -> tuple[float, float, dict]:
    shutil.rmtree(out, ignore_errors=True)
    config = BuildConfig(None, None, out, sa1b=[str(p) for p in tars], workers=1, progress=False, max_masks=max_masks)
    cpu, wall = time.process_time(), time.perf_counter()
    result = build_shards(config)
    return time.process_time() - cpu, time.perf_counter() - wall, result.manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--per-tar", type=int, default=6)
    parser.add_argument("--masks", type=int, default=100)
    parser.add_argument("--width", type=int, default=2250)
    parser.add_argument("--height", type=int, default=1500)
    parser.add_argument("--out", default="/tmp/sa1b_bench")
    parser.add_argument("--reuse", action="store_true", help="measure the tars already in OUT/tars (no synthesis)")
    args = parser.parse_args()
    root = Path(args.out)
    tars = root / "tars"
    started = time.perf_counter()
    if args.reuse:
        paths = sorted(tars.glob("*.tar"))
    else:
        paths = write_synthetic_sa1b(tars, args.images, per_tar=args.per_tar, width=args.width, height=args.height,
                                     masks=args.masks)
        print(f"synthesized {args.images} images {args.width}x{args.height} x {args.masks} masks in "
              f"{time.perf_counter() - started:.0f} s")
    count = len(list_sa1b_tars(paths).images)
    tar_bytes = sum(p.stat().st_size for p in paths)
    print(f"{count} images in {len(paths)} tars, {tar_bytes / count / 1e6:.2f} MB per image in the tars")
    listing = time.perf_counter()
    index = list_sa1b_tars(paths)
    listing = time.perf_counter() - listing
    print(f"listing (headers only): {listing / (2 * len(index.images)) * 1e6:.0f} us per member, warm page cache")
    rates = {}
    for label, max_masks in (("all masks", None), ("max_masks 16", 16), ("no masks", 0)):
        cpu, wall, manifest = _build(paths, root / "shards", max_masks)
        n = manifest["totals"]["samples"]
        per_image = manifest["totals"]["bytes"] / n
        rates[label] = n / cpu
        print(f"{label:>13}: {cpu / n * 1e3:7.0f} CPU ms/img, {n / cpu:5.2f} img/s per worker (wall {n / wall:5.2f}), "
              f"{per_image / 1e3:5.1f} KB/img in shards, {manifest['totals']['instances'] / n:5.1f} masks/img")
    total = SA1B_TARS * SA1B_PER_TAR
    for label, rate in rates.items():
        one = total / (16 * rate) / 3600
        print(f"projection, {label}: {total / 1e6:.0f} M images on 1 node x 16 cores {one:6.1f} h, "
              f"on 8 nodes {one / 8:5.1f} h (linear per core)")


if __name__ == "__main__":
    main()
