#!/usr/bin/env python3
"""The one-GPU speed check of issue 6: run by benchmarks/gpu.sh on one H200, in under 8 minutes, offline.

Sections, each in its own process with its own time limit (a hang or crash loses that section only), in order of
value; `gpu_check.json` (every section's full result) and `gpu_check.md` are rewritten in --out after each one, so
a run cut short keeps what it measured, and `log.txt` has the sections' output. Data and per-section files stay in
--work (three files come back from a device run):

  env       versions, the GPU, the measured dense bf16 matmul rate
  data      synthetic COCO-like images -> 256 px shards (wam-pipe data synth + shard build), no download
  checks    bf16, fp16 (fused and unfused optimizer), fp32 and torch.compile'd bf16 steps: finite losses, no host
            sync after warm-up (torch.cuda.set_sync_debug_mode("error") + HostSyncGuard; JPEG augmentation left out:
            its one sync is documented), no recompiles in the timed steps; compiled vs eager bf16 step time
  speed     img/s, MFU and memory of the default recipe at batch 16/32/64 (wam-pipe bench step, memory mode)
  ablation  each optimisation flipped alone at batch 32 (sync, channels_last, precision, fused optimizer, cuDNN
            benchmark, TF32, deterministic)
  loader    the real loader with 16 workers feeding the step: data-wait fraction, and each loader setting alone
  compile   (only with --sections ... compile) interleaved compiled vs eager arms of bench step; the `checks`
            section already proves compile works and times it, within the budget

`--smoke --device cpu` runs every section at tiny size on the CPU (quickstart models, 32 px), which is what the test
suite does. Usage: python benchmarks/gpu_check.py --out DIR [--pipeline pipelines/train.yaml] [--budget 460]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("env", "data", "checks", "speed", "ablation", "loader", "compile")
DEFAULT_SECTIONS = SECTIONS[:-1]
# Seconds each section may take at most (the remaining budget caps them too).
LIMITS = {"env": 60, "data": 90, "checks": 240, "speed": 120, "ablation": 150, "loader": 120, "compile": 240}
GPU = {"images": 2048, "min_size": 256, "max_size": 640, "size": 256, "per_shard": 32, "batches": (16, 32, 64),
       "ablation_batch": 32, "workers": 16, "steps": 30, "warmup": 10, "rounds": 3, "matmul": 8192}
SMOKE = {"images": 48, "min_size": 40, "max_size": 80, "size": 32, "per_shard": 6, "batches": (2, 4, 8),
         "ablation_batch": 4, "workers": 2, "steps": 2, "warmup": 1, "rounds": 1, "matmul": 256}
ABLATION_ARMS = ["sync", "channels_last", "precision", "fused_optimizer", "cudnn_benchmark", "tf32", "deterministic"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT", "/tmp/wam-gpu-check/results"),
                        help="results folder (default: $OUT, else /tmp/wam-gpu-check/results)")
    parser.add_argument("--work", default=None, help="data and scratch folder (default: a folder under /tmp)")
    parser.add_argument("--pipeline", default=None,
                        help="pipeline (default: pipelines/train.yaml; with --smoke pipelines/quickstart.yaml)")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for the CPU and the test suite")
    parser.add_argument("--budget", type=float, default=460.0, help="seconds for all sections (default 460)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(DEFAULT_SECTIONS))
    parser.add_argument("--section-limit", type=float, default=None, help="cap every section at this many seconds")
    parser.add_argument("--only", choices=["env", "checks"], help=argparse.SUPPRESS)  # one in-process section
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = SMOKE if args.smoke else GPU
    pipeline = args.pipeline or str(REPO / "pipelines" / ("quickstart.yaml" if args.smoke else "train.yaml"))
    out = Path(args.out)
    work = Path(args.work or f"/tmp/wam-gpu-check{'-smoke' if args.smoke else ''}")
    work.mkdir(parents=True, exist_ok=True)
    base = _base_overrides(args, sizes, work)
    if args.only:
        return _in_process(args.only, pipeline, base, sizes, args.device, work)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"pipeline": pipeline, "smoke": args.smoke, "device": args.device, "budget_s": args.budget,
               "started": time.strftime("%Y-%m-%d %H:%M:%S"), "sections": {}}
    deadline = time.monotonic() + args.budget
    (out / "log.txt").write_text("")
    for name in args.sections:
        remaining = deadline - time.monotonic()
        if remaining < 15:
            summary["sections"][name] = {"status": "skipped (out of time)"}
        else:
            limit = min(LIMITS[name] * (4 if args.smoke else 1), remaining, args.section_limit or remaining)
            summary["sections"][name] = _run_section(name, args, pipeline, base, sizes, out, work, limit)
        _write_summary(out, summary)
    failed = [n for n, s in summary["sections"].items() if s.get("status") != "ok"]
    print(f"gpu_check: {len(summary['sections']) - len(failed)}/{len(summary['sections'])} sections ok; results in "
          f"{out}", flush=True)
    return 1 if failed else 0


def _base_overrides(args: argparse.Namespace, sizes: dict, work: Path) -> list[str]:
    base = [f"stages.load.shards={work / 'shards'}", f"stages.load.size={sizes['size']}",
            f"++run.device={args.device}", "++stages.load.shard_slice=null"]
    if args.smoke:  # quickstart's processing size follows its vars
        base += [f"vars.img_size={sizes['size']}", "stages.load.workers=0"]
    return base


def _run_section(name: str, args: argparse.Namespace, pipeline: str, base: list[str], sizes: dict, out: Path,
                 work: Path, limit: float) -> dict[str, Any]:
    command = _command(name, args, pipeline, base, sizes, work)
    result_file = work / f"{name}.json"
    result_file.unlink(missing_ok=True)  # never report an earlier run's numbers
    started = time.monotonic()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "PYTHONUNBUFFERED": "1"}
    with open(out / "log.txt", "a") as log:
        log.write(f"\n=== {name}: {' '.join(command)}\n")
        log.flush()
        # Its own process group, so that a timeout also stops the section's loader and compiler workers.
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                   start_new_session=True)
        try:
            code = process.wait(timeout=limit)
            status = "ok" if code == 0 else f"failed (exit {code}; see log.txt)"
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            status = f"timeout after {limit:.0f} s (partial results kept)"
    entry: dict[str, Any] = {"status": status, "seconds": round(time.monotonic() - started, 1)}
    if result_file.is_file():
        try:
            entry["result"] = json.loads(result_file.read_text())
        except json.JSONDecodeError:
            entry["result"] = None
    print(f"gpu_check: {name}: {status} ({entry['seconds']} s)", flush=True)
    return entry


def _command(name: str, args: argparse.Namespace, pipeline: str, base: list[str], sizes: dict,
             work: Path) -> list[str]:
    py, me = sys.executable, str(Path(__file__).resolve())
    if name in ("env", "checks"):
        extra = ["--smoke"] if args.smoke else []
        return [py, me, "--only", name, "--work", str(work), "--pipeline", pipeline,
                "--device", args.device, *extra]
    if name == "data":
        return [py, "-c", _DATA_SCRIPT, str(work), json.dumps(sizes)]
    bench = [py, "-m", "wam_pipe", "bench", "step", pipeline, *base, "--steps", str(sizes["steps"]),
             "--warmup", str(sizes["warmup"]), "--rounds", str(sizes["rounds"]), "--json", "--out",
             str(work / f"{name}.json")]
    batch = f"stages.load.batch_size={sizes['ablation_batch']}"
    if name == "speed":
        arms = [arg for size in sizes["batches"] for arg in ("--arm", f"batch{size}: stages.load.batch_size={size}")]
        return [*bench, "--modes", "memory", "--ablate", *arms]
    if name == "ablation":
        return [*bench, batch, "--modes", "memory", "--ablate", *ABLATION_ARMS]
    if name == "loader":
        return [*bench, batch, f"stages.load.workers={sizes['workers']}", "--modes", "loader"]
    return [*bench, batch, "--modes", "memory", "--ablate", "compile"]


# The data section: synthetic COCO-like JPEGs, then shards (both no-ops when already built with these settings).
_DATA_SCRIPT = """
import json, sys
from wam_pipe.cli import main
work, sizes = sys.argv[1], json.loads(sys.argv[2])
codes = [main(["data", "synth", "--out", f"{work}/coco", "--images", str(sizes["images"]), "--min-size",
               str(sizes["min_size"]), "--max-size", str(sizes["max_size"])]),
         main(["shard", "build", "--images", f"{work}/coco/images", "--annotations", f"{work}/coco/annotations.json",
               "--out", f"{work}/shards", "--size", str(sizes["size"]), "--samples-per-shard",
               str(sizes["per_shard"]), "--no-progress"])]
sys.exit(max(codes))
"""


def _in_process(name: str, pipeline: str, base: list[str], sizes: dict, device: str, work: Path) -> int:
    import torch

    from wam_pipe.bench.step_cuda_checks import environment, run_checks

    if name == "env":
        result = environment(torch.device(device), sizes["matmul"])
    else:
        checks_overrides = [*base, f"stages.load.batch_size={sizes['ablation_batch']}", *_without_jpeg(pipeline,
                                                                                                       base)]
        result = run_checks(pipeline, checks_overrides, warmup=max(3, sizes["warmup"] // 2), steps=sizes["steps"],
                            run_dir=work / "checks")
    (work / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0 if name == "env" or all(case.get("ok") for case in result.values()) else 1


def _without_jpeg(pipeline: str, base: list[str]) -> list[str]:
    """Overrides deleting the JPEG augmentation(s): the codec runs on the host (its one documented sync)."""
    from wam_pipe.config import compose

    augs = (compose(pipeline, base).resolved["stages"].get("augment") or {}).get("augs") or {}
    return [f"~stages.augment.augs.{name}" for name, node in augs.items()
            if isinstance(node, dict) and str(node.get("_target_", "")).endswith(".JPEG")]


def _write_summary(out: Path, summary: dict[str, Any]) -> None:
    from gpu_report import markdown  # noqa: E402  (benchmarks/ is this script's folder)

    for name, text in (("gpu_check.json", json.dumps(summary, indent=1) + "\n"), ("gpu_check.md", markdown(summary))):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out / name)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
