"""The released-size WAM model on CPU: `import-wam` time and peak memory, and `detect` throughput at 256 px.

Usage:  python benchmarks/released_model.py [--work DIR] [--images 32] [--batch 8] [--threads N]

1. Writes a checkpoint in the released layout (vae_small + sam_base, 32 bits, 432 tensors) with random weights.
2. Runs `/usr/bin/time -v python -m wam_pipe import-wam SRC --out DST` in a fresh process: wall time and peak RSS.
3. Loads the imported file as `embed`/`detect` do and times (a) the model's detect (extractor at 256 px, batches of
   --batch) and (b) `detect_image` on single 256 px images (what `wam-pipe detect` runs per image: model + mask and
   message read-out), after one warm-up call each; reports ms/img and img/s.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from wam_pipe.inference.detect import detect_image
from wam_pipe.config.checkpoint_model import load_watermarker
from wam_pipe.models.reference_layout import RELEASED, attenuation_constants, expected_layout


def _timed(work, items: int) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) per item of `work()`."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return (time.perf_counter() - wall) / items, (time.process_time() - cpu) / items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "wam-bench-released"))
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)

    src, dst = work / "released_layout.pth", work / "imported.pt"
    _, shapes = expected_layout(RELEASED)
    constants = attenuation_constants(RELEASED.build_jnd())
    g = torch.Generator().manual_seed(0)
    torch.save({k: constants.get(k, torch.randn(s, generator=g) * 0.02) for k, s in shapes.items()}, src)
    print(f"released-layout file: {src} ({src.stat().st_size / 2**20:.0f} MiB, {len(shapes)} tensors)")

    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "wam_pipe", "import-wam", str(src), "--out", str(dst)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", proc.stderr)[1]
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)[1])
    user = float(re.search(r"User time \(seconds\): (\S+)", proc.stderr)[1])
    system = float(re.search(r"System time \(seconds\): (\S+)", proc.stderr)[1])
    print(f"import-wam: wall {wall}, cpu {user + system:.1f} s (user {user:.1f}, sys {system:.1f}), "
          f"peak RSS {rss / 2**20:.2f} GiB  [{' '.join(cmd[2:])}]")

    model = load_watermarker(dst, "cpu").model
    imgs = torch.rand(args.images, 3, 256, 256, generator=g)
    photos = (imgs * 255).to(torch.uint8)  # (N, 3, 256, 256), what image files decode to
    singles = min(args.images, 4)
    with torch.inference_mode():
        model.detect(imgs[: args.batch])  # warm-up
        batched = _timed(lambda: [model.detect(imgs[i: i + args.batch]) for i in range(0, args.images, args.batch)],
                         args.images)
        detect_image(model, photos[0])  # warm-up
        single = _timed(lambda: [detect_image(model, photos[i]) for i in range(singles)], singles)
    # CPU ms/img (process time, all threads) is the number that survives a shared machine; img/s is wall clock.
    print(f"detect (extractor, sam_base at 256 px, batch {args.batch}, {args.threads} threads): "
          f"{batched[0] * 1e3:.0f} ms/img wall = {1 / batched[0]:.2f} img/s, {batched[1] * 1e3:.0f} CPU ms/img, "
          f"over {args.images} images")
    print(f"detect_image (one 256 px image at a time, as `wam-pipe detect`): {single[0] * 1e3:.0f} ms/img wall = "
          f"{1 / single[0]:.2f} img/s, {single[1] * 1e3:.0f} CPU ms/img, over {singles} images")
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
