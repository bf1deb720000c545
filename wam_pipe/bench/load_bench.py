"""Data loading: per-file COCO (reference design) vs pre-resized files vs shards, and the decode ceiling.

Builds what it needs in a temporary folder (shards of the given COCO images, and the same samples as loose files),
then runs the arms interleaved (A B C D, A B C D, ...) with the same batch size, workers and decoder. Epoch 0 of each
arm is a warm-up that gives the time to first batch (from creating the loader, JSON parse or manifest read
included); epochs 1..E are measured and the median images/s is reported. `--cache cold` drops each arm's files from
the page cache (posix_fadvise DONTNEED) before each of its measured epochs.

Example: wam-pipe bench load --images ../shared/data/coco_tiny/train2017 \\
             --annotations ../shared/data/coco_tiny/annotations/instances_train2017.json --workers 2 --epochs 5
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from wam_pipe.bench.load_arms import ArmSettings, CeilingArm, FolderSource, LoaderArm, MemorySource, drop_from_page_cache, extract_to_folder
from wam_pipe.core.errors import UserError
from wam_pipe.data.coco_index import load_coco_index
from wam_pipe.data.readers.decode import Collate, preload_decoder
from wam_pipe.data.readers.per_file import PerFileSource
from wam_pipe.data.readers.shard_source import ShardSource
from wam_pipe.data.readers.stream import EpochStream
from wam_pipe.data.shards.build import build_shards, default_workers
from wam_pipe.data.shards.build_state import BuildConfig

ARMS = ("per_file_reference", "per_file_resized", "shards", "shards_no_ring", "decode_ceiling",
        "decode_ceiling_delivered")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", required=True, help="folder of the COCO images")
    parser.add_argument("--annotations", required=True, help="COCO instances JSON")
    parser.add_argument("--workers", type=int, default=2, help="loader processes per arm (default 2)")
    parser.add_argument("--batch-size", type=int, default=16, help="batch size (default 16)")
    parser.add_argument("--epochs", type=int, default=3, help="measured epochs per arm, after one warm-up (default 3)")
    parser.add_argument("--cache", choices=["warm", "cold"], default="warm", help="page cache state per epoch")
    parser.add_argument("--decoder", choices=["torchvision", "pil"], default="torchvision", help="image decoder")
    parser.add_argument("--samples-per-shard", type=int, default=None,
                        help="default: enough shards for 4 per worker (at most 512 samples each)")
    parser.add_argument("--workdir", default=None, help="keep the built shards/files here (default: a temp folder)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args: argparse.Namespace) -> int:
    if args.workers < 0 or args.batch_size < 1 or args.epochs < 1:
        raise UserError("bench load: need --workers >= 0, --batch-size >= 1 and --epochs >= 1")
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="wam-bench-load-"))
    try:
        result = _run_in(workdir, args)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        for line in _table(result):
            print(line)
    return 0


def _prepare(workdir: Path, args: argparse.Namespace) -> tuple[Path, dict[str, Any], Path, list[Path]]:
    count = len(load_coco_index(args.annotations).images)
    per_shard = args.samples_per_shard or max(1, min(512, count // (4 * max(args.workers, 1))))
    shard_dir = workdir / "shards"
    config = BuildConfig(images=Path(args.images), annotations=Path(args.annotations), out=shard_dir,
                         samples_per_shard=per_shard, max_skipped_fraction=1.0, progress=False)
    try:  # a reused --workdir with the same inputs keeps its shards
        manifest = build_shards(config).manifest
    except UserError:  # built from other inputs or settings
        manifest = build_shards(dataclasses.replace(config, overwrite=True)).manifest
    resized = workdir / "resized"
    if resized.exists():
        shutil.rmtree(resized)
    files = extract_to_folder(shard_dir, manifest, resized)
    return shard_dir, manifest, resized, files


def _make_arms(args: argparse.Namespace, shard_dir: Path, manifest: dict, resized: Path, resized_files: list[Path]):
    settings = ArmSettings(batch_size=args.batch_size, workers=args.workers, decoder=args.decoder)
    size = int(manifest["settings"]["size"])

    def stream_over(make_source: Any) -> Any:
        return lambda: EpochStream(make_source(), settings.selector, Collate(channels_last=True),
                                   batch_size=settings.batch_size, seed=settings.seed, rank=0, world_size=1,
                                   drop_last=True, shuffle=True, shuffle_buffer=1000, resampled=False,
                                   max_samples=None)

    def per_file_source() -> Any:
        index = load_coco_index(args.annotations)  # parsed inside setup, so first_batch_s includes it
        return PerFileSource(Path(args.images), index.images, size, args.decoder)

    originals = [Path(args.images) / name for name in _listed_files(args.annotations)]
    shard_files = [shard_dir / s["name"] for s in manifest["shards"]]
    return [
        LoaderArm("per_file_reference", stream_over(per_file_source), settings, originals),
        LoaderArm("per_file_resized", stream_over(lambda: FolderSource(resized, size, args.decoder)), settings,
                  resized_files),
        LoaderArm("shards", stream_over(lambda: ShardSource(shard_dir, manifest, args.decoder)), settings,
                  shard_files),
        LoaderArm("shards_no_ring", stream_over(lambda: ShardSource(shard_dir, manifest, args.decoder)), settings,
                  shard_files, batch_ring=False),
        CeilingArm(shard_dir, manifest, settings),
        LoaderArm("decode_ceiling_delivered", stream_over(lambda: MemorySource(shard_dir, manifest, args.decoder)),
                  settings, []),
    ]


def _listed_files(annotations: str) -> list[str]:
    return [record.file_name for record in load_coco_index(annotations).images]


def _run_in(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    shard_dir, manifest, resized, resized_files = _prepare(workdir, args)
    preload_decoder(args.decoder)  # imports are a one-off cost of the process, not of any arm's data path
    import torchvision.transforms.v2.functional  # noqa: F401  (the per-file arm's resize)

    arms = _make_arms(args, shard_dir, manifest, resized, resized_files)
    rates: dict[str, list[float]] = {arm.name: [] for arm in arms}
    cpu: dict[str, list[float]] = {arm.name: [] for arm in arms}
    first_batch: dict[str, float] = {}
    try:
        for arm in arms:  # warm-up epoch 0: also the time to first batch from a fresh loader
            drop_from_page_cache(arm.files) if args.cache == "cold" else None
            started = time.perf_counter()
            arm.setup()
            timing = arm.run_epoch(0)
            first_batch[arm.name] = (time.perf_counter() - started) - (timing.seconds - timing.first_batch_s)
        for epoch in range(1, args.epochs + 1):
            for arm in arms:  # interleaved, so that machine noise hits every arm alike
                if args.cache == "cold":
                    drop_from_page_cache(arm.files)
                timing = arm.run_epoch(epoch)
                rates[arm.name].append(timing.img_per_s)
                if timing.cpu_ms_per_img is not None:
                    cpu[arm.name].append(timing.cpu_ms_per_img)
    finally:
        for arm in arms:
            getattr(arm, "close", lambda: None)()
    return _result(args, manifest, rates, first_batch, cpu)


def _result(args: argparse.Namespace, manifest: dict, rates: dict[str, list[float]], first: dict[str, float],
            cpu: dict[str, list[float]]) -> dict:
    import PIL
    import PIL.features
    import torch
    import torchvision

    median = {name: statistics.median(values) for name, values in rates.items()}
    reference, ceiling = median["per_file_reference"], median["decode_ceiling"]
    cpu_ms = {name: round(statistics.median(values), 3) if values else None for name, values in cpu.items()}
    return {
        "img_per_s": {name: round(median[name], 1) for name in ARMS},
        "img_per_s_all": {name: [round(v, 1) for v in rates[name]] for name in ARMS},
        "first_batch_s": {name: round(first[name], 3) for name in ARMS},
        "ratios": {
            "shards_vs_reference": round(median["shards"] / reference, 2) if reference else None,
            "resized_vs_reference": round(median["per_file_resized"] / reference, 2) if reference else None,
            "shards_vs_ceiling": round(median["shards"] / ceiling, 3) if ceiling else None,
            "shards_vs_delivered_ceiling": round(median["shards"] / median["decode_ceiling_delivered"], 3)
            if median["decode_ceiling_delivered"] else None,
            "ring_vs_no_ring": round(median["shards"] / median["shards_no_ring"], 3)
            if median["shards_no_ring"] else None,
        },
        "cpu_ms_per_img": {name: cpu_ms[name] for name in ARMS},
        "cpu_ratios": _cpu_ratios(cpu_ms),
        "cache": args.cache,
        "settings": {"workers": args.workers, "batch_size": args.batch_size, "epochs": args.epochs,
                     "decoder": args.decoder, "samples": manifest["totals"]["samples"],
                     "shards": manifest["totals"]["shards"], "mask_mode": "union", "random_subset": 0.5},
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": _cores(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "torchvision": torchvision.__version__, "pillow": PIL.__version__,
                    "libjpeg_turbo": PIL.features.version_feature("libjpeg_turbo")},
    }


def _cpu_ratios(cpu_ms: dict[str, float | None]) -> dict[str, float | None]:
    """Throughput ratios from CPU cost per image: what the arms would reach on dedicated cores (robust to other load
    on a shared machine, unlike wall-clock img/s)."""

    def speed_ratio(arm: str, baseline: str) -> float | None:
        """Throughput of `arm` over `baseline` at equal CPU: cost(baseline) / cost(arm)."""
        cost, baseline_cost = cpu_ms.get(arm), cpu_ms.get(baseline)
        return round(baseline_cost / cost, 3) if cost and baseline_cost else None

    return {
        "shards_vs_reference": speed_ratio("shards", "per_file_reference"),
        "shards_vs_ceiling": speed_ratio("shards", "decode_ceiling"),
        "shards_vs_delivered_ceiling": speed_ratio("shards", "decode_ceiling_delivered"),
        "ring_vs_no_ring": speed_ratio("shards", "shards_no_ring"),
    }


def _cores() -> int:
    return default_workers()


def _table(result: dict[str, Any]) -> list[str]:
    s = result["settings"]
    lines = [f"bench load: {s['samples']} samples, {s['shards']} shards, batch {s['batch_size']}, "
             f"{s['workers']} workers, decoder {s['decoder']}, cache {result['cache']}, {s['epochs']} epochs (median)",
             f"{'arm':<26}{'img/s':>10}{'first batch s':>16}{'CPU ms/img':>12}"]
    for name in ARMS:
        cpu = result["cpu_ms_per_img"][name]
        lines.append(f"{name:<26}{result['img_per_s'][name]:>10.1f}{result['first_batch_s'][name]:>16.3f}"
                     f"{cpu if cpu is not None else float('nan'):>12.3f}")
    r = result["ratios"]
    lines.append(f"shards / reference: {r['shards_vs_reference']}x   resized / reference: "
                 f"{r['resized_vs_reference']}x")
    lines.append(f"shards / decode ceiling: {r['shards_vs_ceiling']:.1%}   shards / delivered decode ceiling: "
                 f"{r['shards_vs_delivered_ceiling']:.1%}")
    c = result["cpu_ratios"]
    lines.append(f"by CPU cost per image: shards / reference {c['shards_vs_reference']}x, shards / decode ceiling "
                 f"{c['shards_vs_ceiling']}, shards / delivered ceiling {c['shards_vs_delivered_ceiling']}, "
                 f"batch ring / none {c['ring_vs_no_ring']}x")
    return lines
