"""The public components a pipeline can name: listed by `wam-pipe ls`, described in the JSON schema.

Components are discovered from the `__all__` of wam-pipe's public packages, plus the torch optimizers and schedulers
the shipped pipelines use.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
from typing import Any

# (category, package): every name in the package's __all__ is a component of that category.
PACKAGES = (
    ("stages", "wam_pipe.stages"),
    ("models", "wam_pipe.models"),
    ("augmentations", "wam_pipe.augment"),
    ("losses", "wam_pipe.losses"),
    ("optim", "wam_pipe.optim"),
)
EXTERNAL = (
    ("optim", "torch.optim.AdamW"),
    ("optim", "torch.optim.Adam"),
    ("optim", "torch.optim.SGD"),
    ("optim", "torch.optim.lr_scheduler.CosineAnnealingLR"),
    ("optim", "torch.optim.lr_scheduler.LinearLR"),
    ("optim", "torch.optim.lr_scheduler.StepLR"),
)


@dataclasses.dataclass(frozen=True)
class Component:
    target: str
    category: str
    summary: str
    obj: Any


def summary_of(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0].rstrip(".") if doc.strip() else ""


@functools.lru_cache(maxsize=1)
def components() -> tuple[Component, ...]:
    found: list[Component] = []
    for category, package in PACKAGES:
        try:
            module = importlib.import_module(package)
        except ModuleNotFoundError as err:
            if err.name != package:
                raise
            continue
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if callable(obj):
                found.append(Component(f"{package}.{name}", category, summary_of(obj), obj))
    for category, target in EXTERNAL:
        module_name, _, name = target.rpartition(".")
        obj = getattr(importlib.import_module(module_name), name)
        found.append(Component(target, category, summary_of(obj), obj))
    return tuple(found)


@functools.lru_cache(maxsize=1)
def _all_targets() -> tuple[str, ...]:
    try:
        return tuple(c.target for c in components())
    except ImportError:
        return ()


def all_targets() -> list[str]:
    return list(_all_targets())
