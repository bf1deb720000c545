"""Checks of the training step's accelerator path: finite bf16/fp16/fp32 steps, torch.compile works, and no host sync
after warm-up.

Used by benchmarks/gpu_check.py (`--only checks`). Each precision builds the pipeline's real Step and Augment with
the bench's arm machinery (batches resident on the device), runs a few warm-up steps, then steps under
`torch.cuda.set_sync_debug_mode("error")` (CUDA only: PyTorch raises at the first synchronizing call) and under
`HostSyncGuard` (any device: read-backs and blocking uploads, recorded). On the CPU (`--smoke`) the same code runs
without the CUDA debug mode.
"""

from __future__ import annotations

import contextlib
import math
import time
import traceback
from pathlib import Path
from typing import Any, Iterator

import torch

from wam_pipe.bench.step_arms import Arm
from wam_pipe.bench.step_runner import Workspace, apply_global_switches, device_sync
from wam_pipe.bench.step_sync_guard import HostSyncGuard
from wam_pipe.runner.meter import MetricMeter

# label -> overrides. fp16 without a fused optimizer is expected to sync (GradScaler reads its inf flag back).
PRECISION_CASES = {
    "bf16": ["++run.precision=bf16"],
    "fp16_fused": ["++run.precision=fp16", "++run.fused_optimizer=true"],
    "fp16_unfused": ["++run.precision=fp16", "++run.fused_optimizer=false"],
    "fp32": ["++run.precision=fp32"],
    # Compilation happens in the warm-up steps; `graphs_compiled_timed` > 0 would mean recompiles in the timed steps.
    # Its `seconds` against bf16's is the compiled step's speed-up at this batch size.
    "bf16_compiled": ["++run.precision=bf16", "++stages.step.compile=true"],
}
EXPECTED_TO_SYNC = {"fp16_unfused"}


@contextlib.contextmanager
def cuda_sync_errors(device: torch.device) -> Iterator[None]:
    """Make every synchronizing CUDA call raise (a no-op off CUDA)."""
    if device.type != "cuda":
        yield
        return
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


def _where(err: BaseException) -> list[str]:
    """The innermost frames of an error, as `file:line function` (where the sync happened)."""
    frames = traceback.extract_tb(err.__traceback__)
    return [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames[-4:]]


def check_precision(workspace: Any, label: str, overrides: list[str], warmup: int, steps: int) -> dict[str, Any]:
    """Warm up, then time `steps` guarded steps of one precision; the loss must stay finite."""
    runtime = workspace.build(Arm(label, overrides))
    device, step = runtime.ctx.device, runtime.step
    apply_global_switches(runtime.settings, device)
    meter = MetricMeter(0, runtime.ctx.precision)
    batches = runtime.batches
    # Warm up under the same torch-function mode as the timed steps (its events are not counted): a compiled
    # module guards on the mode stack, and would otherwise recompile at the first guarded step.
    with HostSyncGuard():
        for index in range(warmup):
            meter.update(step.train_step(batches[index % len(batches)], runtime.augment, runtime.epoch), index)
        meter.read()
    graphs_before = _compiled_graphs()
    entry: dict[str, Any] = {"precision": runtime.ctx.precision, "expected_to_sync": label in EXPECTED_TO_SYNC,
                             "sync_error": None, "sync_where": None}
    started = time.perf_counter()
    with HostSyncGuard() as guard:
        try:
            with cuda_sync_errors(device):
                for index in range(steps):
                    metrics = step.train_step(batches[index % len(batches)], runtime.augment, runtime.epoch)
                    meter.update(metrics, index)
        except RuntimeError as err:  # set_sync_debug_mode("error") raised at a synchronizing call
            entry["sync_error"], entry["sync_where"] = str(err).splitlines()[0], _where(err)
    device_sync(device)
    entry["seconds"] = round(time.perf_counter() - started, 3)
    entry["graphs_compiled_timed"] = _compiled_graphs() - graphs_before
    values = meter.read()  # raises RunFailure if a loss went NaN/inf
    entry["guard_events"] = guard.summary()
    entry["loss"] = values.get("loss")
    entry["finite"] = bool(values) and all(math.isfinite(v) for v in values.values())
    entry["sync_free"] = entry["sync_error"] is None and not guard.events
    entry["ok"] = entry["finite"] and (entry["sync_free"] or entry["expected_to_sync"])
    return entry


def _compiled_graphs() -> int:
    """Graphs torch.compile has produced so far in this process (0 without compile)."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return 0
    return int(counters["stats"].get("unique_graphs", 0))


def run_checks(pipeline: str, overrides: list[str], warmup: int, steps: int, run_dir: Path) -> dict[str, Any]:
    """Every precision case; one failing case is recorded, not fatal."""
    workspace = Workspace(pipeline, overrides, (0, 1, 0), run_dir, steps=steps, distinct_batches=4)
    results: dict[str, Any] = {}
    for label, extra in PRECISION_CASES.items():
        try:
            results[label] = check_precision(workspace, label, extra, warmup, steps)
        except Exception as err:
            results[label] = {"ok": False, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:300]}",
                              "where": _where(err)}
    return results


def environment(device: torch.device, matmul_size: int) -> dict[str, Any]:
    """Versions, the device, and the measured dense bf16 matmul rate (the achievable ceiling for MFU)."""
    info: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": str(device),
                            "cpu_threads": torch.get_num_threads()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, capability=f"{props.major}.{props.minor}", memory_gb=round(props.total_memory
                    / 2**30, 1), multiprocessors=props.multi_processor_count,
                    cudnn=torch.backends.cudnn.version(), bf16=torch.cuda.is_bf16_supported())
    a = torch.randn(matmul_size, matmul_size, device=device, dtype=torch.bfloat16)
    b = torch.randn(matmul_size, matmul_size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    _sync(device)
    started, repeats = time.perf_counter(), 10
    for _ in range(repeats):
        a @ b
    _sync(device)
    seconds = time.perf_counter() - started
    # 3 significant digits: ~900 on an H200, ~0.005 for the CPU smoke test's small matmul (a fixed 1 decimal read 0.0)
    info["matmul_bf16_tflops"] = float(f"{2 * matmul_size**3 * repeats / seconds / 1e12:.3g}")
    info["matmul_size"] = matmul_size
    return info


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
