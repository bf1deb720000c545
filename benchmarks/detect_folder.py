"""Folder detection (`wam-pipe detect --images DIR --out R.jsonl`) against one `wam-pipe detect --image` process per
image, side by side, on the CPU.

    python benchmarks/detect_folder.py [--images ../shared/data/coco_tiny/val2017] [--per-process 8] [--json OUT]

Two models, each an untrained checkpoint with the config a training run stores (speed does not depend on the
weights): "quickstart" (pipelines/quickstart.yaml: ConvEmbedder / ConvExtractor, 16 bits, 64 px) and "reference"
(pipelines/train.yaml: vae_small / sam_base, 32 bits, 256 px). Per model:
- per_process: `wam-pipe detect --checkpoint C --image X --json --device cpu`, one process per image, on the first
  `--per-process` photos (a process per image pays the start, the imports and the model load every time);
- folder: one `wam-pipe detect --images DIR --out R.jsonl --batch-size 16 --workers W --device cpu` over every
  photo of DIR (decode + resize in W loader workers, batched forward passes).
Reported: images/s of wall time (whole commands; for the folder arm also the scan alone, from its summary line,
without the process start and model load), and CPU ms per image (the processes' user + system time, children included, which
other jobs on a shared machine do not inflate), and the ratio folder / per_process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from wam_pipe.models import ConvEmbedder, ConvExtractor, Watermarker, sam_base, vae_small  # noqa: E402
from wam_pipe.core.checkpoint import save_checkpoint  # noqa: E402

MODELS = {
    "quickstart": ({"_target_": "wam_pipe.models.ConvEmbedder", "nbits": 16},
                   {"_target_": "wam_pipe.models.ConvExtractor", "nbits": 16, "img_size": 64}, 64,
                   lambda: (ConvEmbedder(nbits=16), ConvExtractor(nbits=16, img_size=64))),
    "reference": ({"_target_": "wam_pipe.models.vae_small", "nbits": 32},
                  {"_target_": "wam_pipe.models.sam_base", "nbits": 32, "img_size": 256}, 256,
                  lambda: (vae_small(nbits=32), sam_base(nbits=32, img_size=256))),
}


def checkpoint(name: str, folder: Path) -> Path:
    embedder_node, extractor_node, size, build = MODELS[name]
    torch.manual_seed(0)
    embedder, extractor = build()
    model = Watermarker(embedder, extractor, img_size=size)
    step = {"_target_": "wam_pipe.stages.Step", "embedder": embedder_node, "extractor": extractor_node,
            "img_size": size}
    path = folder / f"{name}.pt"
    save_checkpoint(path, {"model": model.state_dict(),
                           "config": yaml.safe_dump({"version": 1, "name": name, "stages": {"step": step}})})
    return path


def timed(commands: list[list[str]]) -> tuple[float, float, str]:
    """Run the commands one after the other; (wall s, CPU s of the children, the last one's stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = ""
    for command in commands:
        out = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(REPO.parent / "shared" / "data" / "coco_tiny" / "val2017"))
    parser.add_argument("--per-process", type=int, default=8, help="photos for the process-per-image arm")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--models", default="quickstart,reference")
    parser.add_argument("--json")
    args = parser.parse_args()
    photos = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    cli = [sys.executable, "-m", "wam_pipe", "detect"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in args.models.split(","):
            ckpt = checkpoint(name, tmp)
            base = [*cli, "--checkpoint", str(ckpt), "--device", "cpu"]
            few = photos[: args.per_process]
            wall, cpu, _ = timed([[*base, "--image", str(p), "--json"] for p in few])
            per_process = {"model": name, "arm": "per_process", "images": len(few), "img_per_s": len(few) / wall,
                           "cpu_ms_per_img": 1000 * cpu / len(few)}
            out = tmp / f"{name}.jsonl"
            wall, cpu, summary = timed([[*base, "--images", args.images, "--out", str(out), "--batch-size", "16",
                                         "--workers", str(args.workers)]])
            # The scan's own rate, without the process start and the model load (its summary line).
            scan_rate = float(re.search(r"\(([0-9.]+) img/s\)", summary).group(1))
            lines = out.read_text().splitlines()
            assert len(lines) == len(photos), (len(lines), len(photos))
            folder = {"model": name, "arm": "folder", "images": len(photos), "img_per_s": len(photos) / wall,
                      "cpu_ms_per_img": 1000 * cpu / len(photos), "scan_img_per_s": scan_rate}
            rows += [per_process, folder]
            print(f"{name}: per_process {per_process['img_per_s']:.2f} img/s, {per_process['cpu_ms_per_img']:.0f} CPU "
                  f"ms/img; folder {folder['img_per_s']:.2f} img/s, {folder['cpu_ms_per_img']:.0f} CPU ms/img; "
                  f"ratio {folder['img_per_s'] / per_process['img_per_s']:.1f}x img/s, "
                  f"{per_process['cpu_ms_per_img'] / folder['cpu_ms_per_img']:.1f}x less CPU", flush=True)
    print("| model | arm | images | img/s (whole command) | img/s (scan alone) | CPU ms/img |")
    print("|---|---|---:|---:|---:|---:|")
    for row in rows:
        scan = f"{row['scan_img_per_s']:.2f}" if "scan_img_per_s" in row else "-"
        print(f"| {row['model']} | {row['arm']} | {row['images']} | {row['img_per_s']:.2f} | {scan} | "
              f"{row['cpu_ms_per_img']:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
