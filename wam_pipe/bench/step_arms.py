"""The arms of `wam-pipe bench step`: the pipeline as configured, and each optimisation toggled alone.

An arm is a list of overrides on top of the pipeline (and the command line's overrides), measured in one of two
modes: `memory` (batches pre-loaded on the device: model, augment, loss, backward, optimizer only) or `loader`
(the real load stage feeding the step; reports the fraction of time spent waiting for data). Every toggle flips the
pipeline's *effective* value, so the table always reads "what if this one switch were the other way".
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Optional

from wam_pipe.core.errors import UserError
from wam_pipe.core.settings import RunSettings
from wam_pipe.core.targets import import_target
from wam_pipe.stages import Load, Step

MODES = ("memory", "loader")


@dataclasses.dataclass
class Arm:
    """One configuration to time.

    Attributes:
        name: unique name in the table.
        overrides: pipeline overrides of this arm (on top of the command line's).
        mode: "memory" or "loader".
        read_every: read the metrics (a host sync) every N steps; None = the arm's `run.log_every`.
        step_free: loader mode only: fetch batches and move them to the device, without training (the loader's
            ceiling as the step sees it).
        note: what the arm changes, for the table.
    """

    name: str
    overrides: list[str]
    mode: str = "memory"
    read_every: Optional[int] = None
    step_free: bool = False
    note: str = ""


def _default_of(cls: Any, key: str) -> Any:
    parameter = inspect.signature(cls).parameters.get(key)
    return None if parameter is None else parameter.default


def _value(node: dict[str, Any], cls: Any, key: str) -> Any:
    """The effective value of a constructor argument: the config's, else the class default."""
    return node[key] if key in node else _default_of(cls, key)


def _flip(name: str, key: str, current: bool, note: str) -> Arm:
    # `++` sets the key whether or not the pipeline file spells it out.
    state = "off" if current else "on"
    return Arm(f"{name}_{state}", [f"++{key}={str(not current).lower()}"], note=f"{note}: {state}")


def _has_fused(optimizer_node: dict[str, Any]) -> bool:
    try:
        target = import_target(optimizer_node["_target_"])
        return "fused" in inspect.signature(target).parameters and "foreach" not in optimizer_node \
            and "fused" not in optimizer_node
    except Exception:  # an unknown optimizer: no fused arm
        return False


def step_arms(resolved: dict[str, Any], device_type: str, precision: str, world_size: int) -> list[Arm]:
    """The memory-mode arms: default, sync every step, and each step/run optimisation flipped alone."""
    run = RunSettings(**(resolved.get("run") or {}))
    step = resolved["stages"]["step"]
    cuda = device_type == "cuda"
    arms = [Arm("default", [], note="the pipeline as configured"),
            Arm("sync_every_step", [], read_every=1, note="metrics read back every step (a host sync per step)"),
            _flip("channels_last", "run.channels_last", run.channels_last, "NHWC models and inputs")]
    for other in ("fp32", "bf16", "fp16"):
        # fp16 autocast on CPU is slow emulation, not a setting anyone would pick there.
        if other != precision and (cuda or other != "fp16"):
            arms.append(Arm(f"precision_{other}", [f"++run.precision={other}"], note=f"autocast {other}"))
    arms.append(_flip("compile", "stages.step.compile", bool(_value(step, Step, "compile")),
                      "torch.compile of embedder and extractor"))
    if _has_fused(step["optimizer"]):
        fused = run.fused_optimizer if run.fused_optimizer is not None else cuda
        arms.append(_flip("fused_optimizer", "run.fused_optimizer", fused, "fused optimizer kernel"))
    if cuda:
        arms.append(_flip("cudnn_benchmark", "run.cudnn_benchmark", run.cudnn_benchmark, "cuDNN autotuner"))
        arms.append(_flip("tf32", "run.tf32", run.tf32, "TF32 matmuls/convolutions"))
    arms.append(_flip("deterministic", "run.deterministic", run.deterministic, "deterministic algorithms"))
    if world_size > 1:
        # Static graph is refused with accumulation or the balanced loss: then there is nothing to flip.
        dynamic_only = _value(step, Step, "grad_accum") > 1 or bool(step["losses"].get("balanced", True))
        if not dynamic_only:
            static = run.ddp_static_graph if run.ddp_static_graph is not None else True
            arms.append(_flip("ddp_static_graph", "run.ddp_static_graph", bool(static), "DDP static_graph"))
        arms.append(_flip("ddp_bucket_view", "run.ddp_bucket_view", run.ddp_bucket_view,
                          "DDP gradient_as_bucket_view"))
        arms.append(_flip("ddp_find_unused", "run.ddp_find_unused", run.ddp_find_unused,
                          "DDP find_unused_parameters"))
    return arms


def loader_arms(resolved: dict[str, Any], device_type: str) -> list[Arm]:
    """The loader-mode arms: the configured loader, the loader alone, and each loader setting changed alone."""
    load = resolved["stages"]["load"]
    workers = int(_value(load, Load, "workers"))
    prefetch = int(_value(load, Load, "prefetch_factor"))
    arms = [Arm("loader", [], mode="loader", note="the configured loader feeding the step"),
            Arm("loader_only", [], mode="loader", step_free=True, note="batches to the device, no training")]
    for count in sorted({0, max(1, workers // 2), workers * 2 or 2} - {workers}):
        arms.append(Arm(f"loader_workers_{count}", [f"stages.load.workers={count}"], mode="loader",
                        note=f"{count} loader workers (configured: {workers})"))
    if workers > 0:
        other = 2 if prefetch != 2 else 4
        arms.append(Arm(f"loader_prefetch_{other}", [f"stages.load.prefetch_factor={other}"], mode="loader",
                        note=f"prefetch_factor {other} (configured: {prefetch})"))
        persistent = bool(_value(load, Load, "persistent_workers"))
        arms.append(_loader_flip("persistent_workers", persistent, "workers kept between epochs"))
        arms.append(_loader_flip("batch_ring", bool(_value(load, Load, "batch_ring")),
                                 "batches handed over in reused shared-memory slots"))
    arms.append(_loader_flip("channels_last", bool(_value(load, Load, "channels_last")),
                             "loader delivers NHWC images"))
    if device_type == "cuda":
        arms.append(_loader_flip("pin_memory", bool(_value(load, Load, "pin_memory")), "pinned host batches"))
    return arms


def _loader_flip(key: str, current: bool, note: str) -> Arm:
    arm = _flip(f"loader_{key}", f"stages.load.{key}", current, note)
    arm.mode = "loader"
    return arm


def parse_arm(spec: str) -> Arm:
    """`"NAME: key=value key=value"` (memory mode) or `"NAME@loader: key=value"` -> an Arm."""
    head, _, rest = spec.partition(":")
    name, _, mode = head.strip().partition("@")
    mode = mode or "memory"
    if not name or mode not in MODES:
        raise UserError(f"--arm {spec!r}: expected 'NAME: key=value ...' or 'NAME@loader: key=value ...'")
    return Arm(name, rest.split(), mode=mode, note=f"custom: {rest.strip()}")


def select(arms: list[Arm], wanted: Optional[list[str]]) -> list[Arm]:
    """Arms whose name starts with one of `wanted` (the references of each mode always stay); all when None."""
    if wanted is None:
        return arms
    keep = {"default", "loader", "loader_only"}
    return [arm for arm in arms if arm.name in keep or any(arm.name.startswith(w) for w in wanted)]
