"""The one place that turns validated config nodes into objects (hydra-zen `instantiate`).

Only call it on nodes that `validate` accepted, from a config with no refused target: every `_target_` in it has
passed the allowlist. Keeping instantiation here means a future Hydra execution allowlist is a one-place change.
"""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra_zen import instantiate
from omegaconf import OmegaConf

from wam_pipe.config.nodes import target_nodes
from wam_pipe.core.errors import ConfigError


def _root_cause(err: BaseException) -> BaseException:
    while err.__cause__ is not None and isinstance(err, InstantiationException):
        err = err.__cause__
    return err


def _full_key(err: BaseException) -> str:
    for line in str(err).splitlines():
        if line.strip().startswith("full_key:"):
            return line.split("full_key:", 1)[1].strip()
    return ""


def build_node(node: dict[str, Any], path: str, file: str) -> Any:
    """Instantiate one resolved `_target_` node (children first, plain dicts/lists); errors name the key."""
    try:
        return instantiate(OmegaConf.create(node), _convert_="all")
    except ConfigError:
        raise
    except Exception as err:
        cause = _root_cause(err)
        key = _full_key(err)
        where = f"{path}.{key}" if key else path
        message = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        raise ConfigError([f"{file}: {where}: could not build: {type(cause).__name__}: {message}"]) from err


def build_stage(node: dict[str, Any], path: str, file: str) -> Any:
    """`build_node` for a stage; when it fails, every failing component inside it is reported, not just the first.

    Hydra stops at the first constructor that raises. On that (rare) path each nested component is built alone,
    deepest first, skipping those above one that already failed, so one run names all the broken components.
    """
    try:
        return build_node(node, path, file)
    except ConfigError as err:
        first = err
    in_order = [n for n in target_nodes(node, path) if n[0] != path]  # the components inside, document order
    failed: dict[str, list[str]] = {}
    for child_path, child in reversed(in_order):  # reversed pre-order: each child before its parent
        if any(f.startswith(f"{child_path}.") for f in failed):
            continue  # its failure follows from a failing component inside it, already reported
        try:
            build_node(child, child_path, file)
        except ConfigError as err:
            failed[child_path] = err.errors
    if not failed:
        raise first
    # Reported in document order: no failed component lies inside another, so this is the order they appear in.
    raise ConfigError([e for child_path, _ in in_order for e in failed.get(child_path, [])]) from first


def build_stages(resolved: dict[str, Any], file: str, kinds: list[str] | None = None) -> dict[str, Any]:
    """Instantiate every stage (cheap constructors) so a typo in `eval` fails before `shard-build` runs.

    Each stage is built on its own and all their errors are raised together (one ConfigError). `kinds` limits the
    build to those stages (the clean ones of a config with errors elsewhere).
    """
    stages, errors = {}, []
    for kind, node in resolved["stages"].items():
        if kinds is not None and kind not in kinds:
            continue
        try:
            stages[kind] = build_stage(node, f"stages.{kind}", file)
        except ConfigError as err:
            errors.extend(err.errors)
    if errors:
        raise ConfigError(errors)
    return stages
