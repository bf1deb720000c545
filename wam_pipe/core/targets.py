"""Which `_target_`s a pipeline may name, and importing them with helpful suggestions.

Security: a pipeline file is code-adjacent (it names callables, and `wam-pipe validate` builds the stages), so
targets are limited to an allowlist of import path patterns. By default that is the component packages of wam-pipe
and the compute-only parts of torch and torchvision:

    wam_pipe.stages.*  wam_pipe.models.*  wam_pipe.augment.*  wam_pipe.losses.*  wam_pipe.optim.*
    torch.nn.*  torch.optim.*  torchvision.transforms.*  torchvision.ops.*

plus the pipeline's own `allow_targets:` patterns. Not `torch.*` as a whole: it holds callables that run shell
commands (`torch.utils.collect_env.run`), compile and load C++ (`torch.utils.cpp_extension`), download and unpickle
(`torch.hub`, `torch.load`, `torch.jit.load`, `torch.package`), spawn processes (`torch.multiprocessing`,
`torch.distributed`) or write files. Those, and private names (a path part starting with `_`, e.g. `__globals__`),
stay refused even under a broader `allow_targets` wildcard such as `torch.*`; only an `allow_targets` entry naming
the exact target trusts them.

Two checks, both before anything is called:
1. `disallowed_reason` looks at the string only, so a disallowed module is never imported.
2. `import_allowed` imports the allowed prefix and then checks where each object on the path really comes from:
   `wam_pipe.stages.load.Path` or `torch.nn.modules.module.torch.load` match an allowed pattern as strings, but
   reach `pathlib` and `torch.serialization` through a module's imports, and are refused; so is a path that goes
   into a class (`wam_pipe.stages.ShardBuild.run`): a component is a class or function defined in a module.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import pkgutil
import types
from typing import Any

DEFAULT_ALLOWED = (
    "wam_pipe.stages.*", "wam_pipe.models.*", "wam_pipe.augment.*", "wam_pipe.losses.*", "wam_pipe.optim.*",
    "torch.nn.*", "torch.optim.*", "torchvision.transforms.*", "torchvision.ops.*",
)

# Able to run commands or arbitrary code, unpickle, download, spawn processes or write files: refused even when an
# `allow_targets` wildcard covers them (e.g. `torch.*`), unless `allow_targets` names the exact target.
BLOCKED = (
    "torch.utils.*", "torch.hub.*", "torch.load", "torch.save", "torch.jit.*", "torch.package.*",
    "torch.serialization.*", "torch.distributed.*", "torch.multiprocessing.*", "torch.ops.*", "torch.compile",
    "torch.compiler.*", "torch.onnx.*", "torch.export.*", "torch.profiler.*", "torch.cuda.*", "torch.backends.*",
    "torchvision.datasets.*", "torchvision.models.*", "torchvision.io.*", "torchvision.utils.*",
    "os.*", "subprocess.*", "shutil.*", "builtins.*", "importlib.*", "pickle.*", "runpy.*", "sys.*",
)


class TargetError(Exception):
    """A `_target_` that cannot be used; the message is ready for the user."""


class TargetNotAllowed(TargetError):
    """A `_target_` refused by the allowlist (the message says "not allowed" and names `allow_targets`)."""


def _inside(name: str, pattern: str) -> bool:
    """`name` matches `pattern`; a module `a.b` is also inside the tree `a.b.*`."""
    return fnmatch.fnmatchcase(name, pattern) or (pattern.endswith(".*") and name == pattern[:-2])


def _blocked(name: str) -> bool:
    return any(_inside(name, pattern) for pattern in BLOCKED)


def disallowed_reason(target: str, allow_targets: list[str] | tuple[str, ...] = (),
                      known_targets: list[str] | None = None) -> str | None:
    """None when the string `target` may be imported, else why not (mentions `allow_targets`). Imports nothing.

    `known_targets` (the catalogue) gives a "did you mean" for a misspelled package (`wam_pipe.optimm.X`).
    """
    if not isinstance(target, str) or not target or "." not in target:
        return f"{target!r} is not a dotted import path such as 'wam_pipe.stages.Load'"
    if target in allow_targets:
        return None  # named exactly: the user vouches for it
    trust = f"name it exactly in the pipeline's allow_targets ('{target}') if you trust it"
    if any(part.startswith("_") for part in target.split(".")):
        return f"'{target}' is not allowed: a path part starting with '_' is private or special; {trust}"
    if _blocked(target):
        return f"'{target}' is not allowed: it can run commands, load code or data, or write files; {trust}"
    patterns = (*DEFAULT_ALLOWED, *allow_targets)
    if any(fnmatch.fnmatchcase(target, pattern) for pattern in patterns):
        return None
    root = target.split(".")[0]
    if root in ("wam_pipe", "torch", "torchvision"):
        hint = trust
    else:
        hint = f"add '{root}.*' or the exact path to the pipeline's allow_targets to trust it"
    close = difflib.get_close_matches(target, known_targets or [], n=1, cutoff=0.8)
    if close:
        hint = f"did you mean '{close[0]}'? Else {hint}"
    return f"'{target}' is not allowed (allowed: {', '.join(patterns)}); {hint}"


def _origin(obj: Any) -> str:
    """The module an object comes from: a module's own name, else where its function or class was defined."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    module = getattr(obj, "__module__", None)
    return module if isinstance(module, str) else type(obj).__module__


def _check_origins(target: str, chain: list[tuple[str, Any]], allow_targets: list[str] | tuple[str, ...]) -> None:
    """Refuse a target whose path leaves the allowed trees through a module's imports (`wam_pipe.x.shutil.rmtree`),
    or goes into a class or function (`wam_pipe.stages.ShardBuild.run`): a component is a module-level name."""
    patterns = (*DEFAULT_ALLOWED, *allow_targets)
    for i, (path, obj) in enumerate(chain):
        if i > 0 and not isinstance(chain[i - 1][1], types.ModuleType):
            raise TargetNotAllowed(
                f"'{target}' is not allowed: '{path}' is an attribute of '{chain[i - 1][0]}', not a class or "
                f"function of a module; name the component itself, or name '{target}' exactly in the pipeline's "
                f"allow_targets if you trust it")
        origin = _origin(obj)
        if _blocked(origin) or not any(_inside(origin, pattern) for pattern in patterns):
            raise TargetNotAllowed(
                f"'{target}' is not allowed: '{path}' comes from module '{origin}', outside the allowed modules "
                f"({', '.join(patterns)}); name the component by its own module, or name '{target}' exactly in "
                f"the pipeline's allow_targets if you trust it")


def import_allowed(target: str, allow_targets: list[str] | tuple[str, ...] = (),
                   known_targets: list[str] | None = None) -> Any:
    """The object `target` names, after both allowlist checks (TargetNotAllowed) and the import (TargetError)."""
    reason = disallowed_reason(target, allow_targets)
    if reason:
        raise TargetNotAllowed(reason)
    obj, chain = _resolve(target, known_targets)
    if target not in allow_targets:
        _check_origins(target, chain, allow_targets)
    return obj


def _public_names(module: Any) -> list[str]:
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    return list(names)


def _submodules(module: Any) -> list[str]:
    path = getattr(module, "__path__", None)
    return [m.name for m in pkgutil.iter_modules(path)] if path else []


def import_target(target: str, known_targets: list[str] | None = None) -> Any:
    """Import `a.b.C`; on failure raise TargetError with a 'did you mean' from the module or the catalogue.

    Checks no allowlist: call `disallowed_reason` first, or use `import_allowed`.
    """
    return _resolve(target, known_targets)[0]


def _resolve(target: str, known_targets: list[str] | None) -> tuple[Any, list[tuple[str, Any]]]:
    """(object, [(dotted path, object) for the imported module and every attribute taken after it])."""
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
    chain = [(".".join(parts[:depth]), module)]
    for i in range(depth, len(parts)):
        if not hasattr(obj, parts[i]):
            where = ".".join(parts[:i])
            candidates = _public_names(obj) + _submodules(obj)
            raise TargetError(_not_found(target, parts[i], candidates, known_targets, where))
        obj = getattr(obj, parts[i])
        chain.append((".".join(parts[: i + 1]), obj))
    return obj, chain


def _not_found(target: str, missing: str, candidates: list[str], known: list[str] | None, where: str = "") -> str:
    place = f"module '{where}' has no attribute '{missing}'" if where else f"no module named '{missing}'"
    close = difflib.get_close_matches(missing, candidates, n=1, cutoff=0.6)
    if close:
        suggestion = f"{where}.{close[0]}" if where else close[0]
        return f"cannot import '{target}': {place} (did you mean '{suggestion}'?)"
    close_full = difflib.get_close_matches(target, known or [], n=1, cutoff=0.7)
    hint = f" (did you mean '{close_full[0]}'?)" if close_full else " (see `wam-pipe ls` for the components)"
    return f"cannot import '{target}': {place}{hint}"
