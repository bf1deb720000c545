"""Which `_target_`s a pipeline may name, and importing them with helpful suggestions.

Security: a pipeline file is code-adjacent (it names callables), so targets are limited to an allowlist of import
path patterns: `wam_pipe.*`, `torch.*`, `torchvision.*` plus the pipeline's own `allow_targets:`. The check is on the
string, before anything is imported, so a disallowed module is never imported and a disallowed callable never called.
A few callables under the default prefixes are blocked because they load code or data from disk or the network.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import pkgutil
from typing import Any

DEFAULT_ALLOWED = ("wam_pipe.*", "torch.*", "torchvision.*")

# Under the default prefixes but able to run arbitrary code, unpickle, or download: blocked unless a pipeline's
# `allow_targets` names the exact target.
BLOCKED = (
    "torch.hub.*", "torch.load", "torch.save", "torch.jit.*", "torch.package.*", "torch.utils.cpp_extension.*",
    "torch.distributed.*", "torch.multiprocessing.*", "torch.ops.*", "torch.utils.data.*", "torch.compile",
    "torchvision.datasets.*", "torchvision.models.*", "torchvision.io.*", "torchvision.utils.*",
    "torch.serialization.*", "torch.onnx.*", "torch.export.*", "torch.utils.model_zoo.*",
)


class TargetError(Exception):
    """A `_target_` that cannot be used; the message is ready for the user."""


def disallowed_reason(target: str, allow_targets: list[str] | tuple[str, ...] = ()) -> str | None:
    """None when `target` may be imported and called, else why not (mentions `allow_targets`)."""
    if not isinstance(target, str) or not target or "." not in target:
        return f"{target!r} is not a dotted import path such as 'wam_pipe.stages.Load'"
    if any(target == pattern for pattern in allow_targets):
        return None
    if any(fnmatch.fnmatchcase(target, pattern) for pattern in BLOCKED):
        return (f"'{target}' is not allowed: it can load code or data at run time; name it exactly in the "
                f"pipeline's allow_targets if you trust it")
    patterns = (*DEFAULT_ALLOWED, *allow_targets)
    if any(fnmatch.fnmatchcase(target, pattern) for pattern in patterns):
        return None
    prefix = target.split(".")[0]
    return (f"'{target}' is not allowed (allowed: {', '.join(patterns)}); add '{prefix}.*' or the exact path "
            f"to the pipeline's allow_targets to trust it")


def _public_names(module: Any) -> list[str]:
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    return list(names)


def _submodules(module: Any) -> list[str]:
    path = getattr(module, "__path__", None)
    return [m.name for m in pkgutil.iter_modules(path)] if path else []


def import_target(target: str, known_targets: list[str] | None = None) -> Any:
    """Import `a.b.C`; on failure raise TargetError with a 'did you mean' from the module or the catalogue."""
    parts = target.split(".")
    module, depth = None, 0
    for depth in range(len(parts), 0, -1):
        name = ".".join(parts[:depth])
        try:
            module = importlib.import_module(name)
            break
        except ModuleNotFoundError as err:
            # Only "this path is not a module" means "try a shorter prefix"; a missing dependency is a real error.
            if err.name != name and not name.startswith(f"{err.name}."):
                raise TargetError(f"cannot import '{target}': {err}") from err
        except Exception as err:  # the module exists but fails to import: report it, don't guess
            raise TargetError(f"cannot import '{target}': importing '{name}' failed: {err}") from err
    if module is None:
        raise TargetError(_not_found(target, parts[0], [m.name for m in pkgutil.iter_modules()], known_targets))
    obj: Any = module
    for i in range(depth, len(parts)):
        if not hasattr(obj, parts[i]):
            where = ".".join(parts[:i])
            candidates = _public_names(obj) + _submodules(obj)
            raise TargetError(_not_found(target, parts[i], candidates, known_targets, where))
        obj = getattr(obj, parts[i])
    return obj


def _not_found(target: str, missing: str, candidates: list[str], known: list[str] | None, where: str = "") -> str:
    place = f"module '{where}' has no attribute '{missing}'" if where else f"no module named '{missing}'"
    close = difflib.get_close_matches(missing, candidates, n=1, cutoff=0.6)
    if close:
        suggestion = f"{where}.{close[0]}" if where else close[0]
        return f"cannot import '{target}': {place} (did you mean '{suggestion}'?)"
    close_full = difflib.get_close_matches(target, known or [], n=1, cutoff=0.7)
    hint = f" (did you mean '{close_full[0]}'?)" if close_full else " (see `wam-pipe ls` for the components)"
    return f"cannot import '{target}': {place}{hint}"
