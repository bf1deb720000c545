"""Training step: images/s with the data in memory and with the real loader, and each optimisation toggled alone.

Arms (`--ablate` picks them by name prefix; `--arm` adds your own):
  memory mode   batches pre-loaded on the device; the real Step and Augment of the pipeline (embed, splice, augment,
                extract, losses, backward, optimizer). `default` is the pipeline as configured; `sync_every_step`
                reads the metrics back every step; the others flip one switch each (channels_last, precision,
                compile, fused_optimizer, cudnn_benchmark, tf32, deterministic, DDP flags under torchrun).
  loader mode   the real load stage feeding the same step, one whole epoch of --steps batches per chunk; reports the
                fraction of the time spent waiting for data. `loader_only` fetches batches without training (the
                loader's own rate); the others change one loader setting (workers, prefetch, persistence, ...).

Arms run interleaved (A B C, A B C, ...) after a warm-up of each (compilation happens there), so that machine
noise hits all of them alike; the table gives medians over the rounds and ratios to the default of the same mode.
Never compare numbers from separate runs. Under torchrun every rank runs every arm (DDP arms appear there).

Examples:
  wam-pipe bench step pipelines/quickstart.yaml --steps 20 --rounds 3
  wam-pipe bench step pipelines/train.yaml stages.load.shards=/data/shards --ablate precision compile \\
      --arm "batch64: stages.load.batch_size=64" --json --out step.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from wam_pipe.config.overrides import OVERRIDES_HELP
from wam_pipe.core.atomic import atomic_write_text
from wam_pipe.bench.step_arms import Arm, loader_arms, parse_arm, select, step_arms
from wam_pipe.bench.step_runner import Workspace, resident_bytes, run_chunk
from wam_pipe.config import build_node
from wam_pipe.core import distributed
from wam_pipe.core.errors import UserError
from wam_pipe.core.precision import resolve_precision
from wam_pipe.core.settings import RunSettings
from wam_pipe.models import Watermarker, count_training_flops

# Dense bf16 tensor-core peak per GPU, TFLOP/s, from the vendors' datasheets (H200/H100 SXM: 1,979 with 2:4
# sparsity, so 989.4 dense; A100: 312). MFU is reported against these; --peak-tflops overrides.
PEAK_BF16_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline", metavar="PIPELINE.yaml", help="pipeline file (needs load and step stages)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per arm per round (default 20)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per arm before round 1 (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported (default 3)")
    parser.add_argument("--batches", type=int, default=8, help="distinct in-memory batches cycled (default 8)")
    parser.add_argument("--modes", nargs="+", choices=["memory", "loader"], default=["memory", "loader"],
                        help="which modes to run (default both)")
    parser.add_argument("--ablate", nargs="*", metavar="ARM",
                        help="only these standard arms (name prefixes, e.g. precision compile loader_workers); "
                             "no names: only the defaults. Default: every arm that applies to this device")
    parser.add_argument("--arm", action="append", default=[], metavar="'NAME[@loader]: key=value ...'",
                        help="an extra arm with its own overrides (repeatable)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="peak TFLOP/s for MFU (default: the GPU's dense bf16 peak when known)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's); 1 makes CPU ms/img robust on a shared CPU")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--out", metavar="FILE", help="also write the JSON here (rewritten after every round)")


def run(args: argparse.Namespace) -> int:
    unknown = [item for item in args.overrides if item.startswith("--")]
    if unknown:
        raise UserError(f"bench step: unknown option {unknown[0]}; overrides look like key=value")
    if args.steps < 1 or args.warmup < 0 or args.rounds < 1 or args.batches < 1:
        raise UserError("bench step: need --steps >= 1, --warmup >= 0, --rounds >= 1 and --batches >= 1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    coordinates = distributed.env_coordinates()
    with tempfile.TemporaryDirectory(prefix="wam-bench-step-") as scratch:
        result = _bench(args, coordinates, Path(scratch))
    if coordinates[0] == 0:
        print(json.dumps(result) if args.json else "\n".join(table(result)))
    return 0


def _bench(args: argparse.Namespace, coordinates: tuple[int, int, int], scratch: Path) -> dict[str, Any]:
    workspace = Workspace(args.pipeline, args.overrides, coordinates, scratch, args.steps, args.batches)
    base = workspace.compose(_plain_arm())
    device, precision = _device_and_precision(base, coordinates[2])
    distributed.init_process_group(device, _backend(base), coordinates[1])
    try:
        arms = _arms(args, base.resolved, device, precision, coordinates[1])
        for arm in arms:
            workspace.compose(arm)  # every arm's overrides are valid before anything is timed (ConfigError)
        result = _header(args, base, device, precision, coordinates[1])
        result["flops_per_img"] = _flops_per_image(base, device)
        _measure(args, workspace, arms, result)
    finally:
        distributed.shutdown()
    return result


def _plain_arm() -> Any:
    return Arm("default", [])


def _device_and_precision(pipeline: Any, local_rank: int) -> tuple[Any, str]:
    settings = RunSettings.from_dict(dict(pipeline.resolved.get("run") or {}), pipeline.name)
    device = distributed.pick_device(settings.device, local_rank)
    return device, resolve_precision(settings.precision, device)


def _backend(pipeline: Any) -> str:
    return str((pipeline.resolved.get("run") or {}).get("dist_backend", "auto"))


def _arms(args: argparse.Namespace, resolved: dict, device: Any, precision: str, world_size: int) -> list[Any]:
    arms = []
    if "memory" in args.modes:
        arms += select(step_arms(resolved, device.type, precision, world_size), args.ablate)
    if "loader" in args.modes:
        arms += select(loader_arms(resolved, device.type), args.ablate)
    arms += [parse_arm(spec) for spec in args.arm]
    names = [arm.name for arm in arms]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise UserError(f"bench step: arm names must be unique; repeated: {', '.join(duplicates)}")
    return arms


def _measure(args: argparse.Namespace, workspace: Any, arms: list[Any], result: dict[str, Any]) -> None:
    """Build and warm up every arm, then the interleaved rounds; failures are recorded per arm, never fatal."""
    live, chunks = {}, {arm.name: [] for arm in arms}
    result["arms"] = {arm.name: _arm_entry(arm) for arm in arms}
    result["schedule"] = []  # the order the timed chunks ran in: A B C, A B C, ...
    for arm in arms:
        entry = result["arms"][arm.name]
        try:
            started = time.perf_counter()
            runtime = workspace.build(arm)
            if args.warmup:
                run_chunk(runtime, args.warmup, round_index=-1)
            entry["warmup_s"] = round(time.perf_counter() - started, 2)
            entry["resident_mb"] = round(resident_bytes(runtime.step) / 2**20, 2)
            entry["precision"] = runtime.ctx.precision
            live[arm.name] = runtime
        except Exception as err:  # one arm's failure (compile, OOM, non-finite loss) must not end the bench
            entry["error"] = _one_line(err)
            _release_memory()
    for round_index in range(args.rounds):
        for arm in arms:
            if arm.name not in live:
                continue
            try:
                result["schedule"].append(arm.name)
                chunks[arm.name].append(run_chunk(live[arm.name], args.steps, round_index))
            except Exception as err:
                result["arms"][arm.name]["error"] = _one_line(err)
                del live[arm.name]
                _release_memory()
        _summarise(result, chunks, args.peak_tflops)
        _write_partial(args, result, round_index + 1)


def _arm_entry(arm: Any) -> dict[str, Any]:
    return {"mode": arm.mode, "overrides": arm.overrides, "note": arm.note,
            "read_every": arm.read_every, "step_free": arm.step_free, "error": None}


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300] if text else ''}"


def _release_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _summarise(result: dict[str, Any], chunks: dict[str, list], peak_tflops: float | None) -> None:
    """Medians per arm, ratios to the default of the same mode, data wait, memory and MFU."""
    peak = peak_tflops or result["peak_tflops"]
    for name, entry in result["arms"].items():
        done = chunks[name]
        if not done:
            continue
        rates = [chunk.img_per_s for chunk in done]
        entry["img_per_s"] = round(statistics.median(rates), 2)
        entry["img_per_s_all"] = [round(rate, 2) for rate in rates]
        entry["data_wait"] = round(statistics.median(c.waiting / max(c.seconds, 1e-9) for c in done), 4)
        entry["cpu_ms_per_img"] = round(statistics.median(c.cpu_ms_per_image for c in done), 3)  # this process
        peaks = [c.peak_step_bytes for c in done if c.peak_step_bytes is not None]
        entry["peak_step_mb"] = round(max(peaks) / 2**20, 1) if peaks else None
        flops = result.get("flops_per_img")
        entry["mfu"] = round(entry["img_per_s"] * flops / (peak * 1e12), 4) if flops and peak and \
            not entry["step_free"] else None
    for name, entry in result["arms"].items():
        reference = result["arms"].get("default" if entry["mode"] == "memory" else "loader", {})
        if entry.get("img_per_s") and reference.get("img_per_s"):
            entry["ratio"] = round(entry["img_per_s"] / reference["img_per_s"], 3)


def _write_partial(args: argparse.Namespace, result: dict[str, Any], rounds_done: int) -> None:
    result["rounds_done"] = rounds_done
    if args.out and result.get("rank", 0) == 0:
        path = Path(args.out)
        atomic_write_text(path, json.dumps(result, indent=1) + "\n")


def _header(args: argparse.Namespace, pipeline: Any, device: Any, precision: str, world_size: int) -> dict:
    import torch

    load = pipeline.resolved["stages"]["load"]
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "pipeline": args.pipeline, "overrides": args.overrides, "device": str(device), "gpu": gpu,
        "world_size": world_size, "rank": distributed.env_coordinates()[0], "precision": precision,
        "batch_size": load.get("batch_size", 16), "img_size": pipeline.resolved["stages"]["step"].get("img_size", 256),
        "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds, "distinct_batches": args.batches,
        "peak_tflops": args.peak_tflops or _known_peak(gpu),
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
    }


def _known_peak(gpu: str | None) -> float | None:
    for name, tflops in PEAK_BF16_TFLOPS.items():
        if gpu and name in gpu:
            return tflops
    return None


def _flops_per_image(pipeline: Any, device: Any) -> float | None:
    """Counted training FLOPs per image (one embed + one extract, x3 for backward) of a fresh, uncompiled model."""
    import torch

    step = pipeline.resolved["stages"]["step"]
    try:
        embedder = build_node(step["embedder"], "stages.step.embedder", pipeline.file)
        extractor = build_node(step["extractor"], "stages.step.extractor", pipeline.file)
        model = Watermarker(embedder, extractor, img_size=step.get("img_size", 256)).to(device)
        flops = count_training_flops(model, model.img_size)
    except Exception:  # FLOP counting is a report nicety; an exotic model must not stop the benchmark
        return None
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return flops


def table(result: dict[str, Any]) -> list[str]:
    """The human-readable report."""
    lines = [f"bench step: {result['pipeline']} {' '.join(result['overrides'])}".rstrip(),
             f"{result['world_size']} x {result['gpu'] or result['device']}, {result['precision']}, batch "
             f"{result['batch_size']}/rank, {result['img_size']} px; {result['steps']} steps x "
             f"{result.get('rounds_done', 0)} rounds (medians), warm-up {result['warmup']} steps"]
    flops = result.get("flops_per_img")
    if flops:
        peak = result.get("peak_tflops")
        lines.append(f"counted training FLOPs: {flops / 1e9:.2f} GFLOP/img" + (f"; MFU vs {peak} TFLOP/s" if peak
                                                                             else ""))
    lines.append(f"{'arm':<34}{'mode':<8}{'img/s':>10}{'vs default':>12}{'data wait':>11}{'CPU ms/img':>12}"
                 f"{'step MB':>9}{'MFU':>8}  note")
    for name, e in result["arms"].items():
        if e.get("error") and "img_per_s" not in e:
            lines.append(f"{name:<34}{e['mode']:<8}{'failed':>10}  {e['error']}")
            continue
        wait = e.get("data_wait") if e["mode"] == "loader" and not e["step_free"] else None
        lines.append(f"{name:<34}{e['mode']:<8}{e.get('img_per_s', float('nan')):>10.1f}"
                     f"{_fmt(e.get('ratio'), '.3f', 'x'):>12}{_fmt(wait, '.1%'):>11}"
                     f"{_fmt(e.get('cpu_ms_per_img') if e['mode'] == 'memory' else None, '.2f'):>12}"
                     f"{_fmt(e.get('peak_step_mb'), '.0f'):>9}{_fmt(e.get('mfu'), '.1%'):>8}  {e['note']}"
                     + (f" [{e['error']}]" if e.get("error") else ""))
    return lines


def _fmt(value: Any, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"
