"""Optimizer and LR-scheduler values checked at `validate`, not at the first step of `run`.

torch checks an optimizer's values only when it is built on real parameters (`lr=nan` or `-1`: a ValueError at the
start of training), and lets some through (`lr=inf`, `betas: [0.9, .nan]`) to fail later as NaN losses. At validate,
a node whose target is a `torch.optim.Optimizer` or an `LRScheduler` subclass gets:

- every number in its values (lists too) checked finite;
- a trial construction on one dummy parameter (a scheduler: on a dummy SGD), so torch's and our schedulers' own
  checks run; what they refuse becomes a validate error naming the node.

Device-dependent switches (`fused`, `foreach`, `capturable`) are left out of the trial: a CPU-only validate must not
refuse a CUDA-only option.
"""

from __future__ import annotations

import inspect
import math
import warnings
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from wam_pipe.core.signature import RESERVED_KEYS

_DEVICE_SWITCHES = ("fused", "foreach", "capturable")


def optimizer_problems(obj: Any, node: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, message) problems of an optimizer or scheduler node; [] for any other target."""
    is_optimizer = inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer)
    is_scheduler = inspect.isclass(obj) and issubclass(obj, LRScheduler)
    if not (is_optimizer or is_scheduler):
        return []
    values = {k: v for k, v in node.items() if k not in RESERVED_KEYS}
    problems = [(key, f"must be a finite number, got {value!r}") for key, value in _numbers(values)
                if not math.isfinite(value)]
    nested = any(isinstance(v, dict) for v in values.values())
    if problems or nested or "_args_" in node:
        return problems
    trial = {k: v for k, v in values.items() if k not in _DEVICE_SWITCHES}
    parameter = torch.nn.Parameter(torch.zeros(1))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if is_optimizer:
                obj([parameter], **trial)
            else:
                obj(torch.optim.SGD([parameter], lr=0.1), **trial)
    except (ValueError, TypeError, RuntimeError, ZeroDivisionError) as err:
        return [("", f"{node['_target_']} refuses these values: {err}")]
    return []


def _numbers(values: dict[str, Any]) -> list[tuple[str, float]]:
    """(dotted key, number) for every int/float in `values`, lists included (`betas.1`)."""
    found: list[tuple[str, float]] = []

    def visit(value: Any, key: str) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, (int, float)):
            found.append((key, float(value)))
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                visit(item, f"{key}.{i}")

    for key, value in values.items():
        visit(value, key)
    return found
