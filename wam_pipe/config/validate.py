"""Validate a composed pipeline before anything runs, collecting every error (`FILE: dotted.key: message`).

Checks, in order: interpolations resolve; the closed top level and the shape of `stages`; the `run:` block against
`RunSettings`; then every `_target_` node at any depth: allowlist (before import), import with a suggestion,
unknown arguments with a suggestion, value types, missing required arguments (not for `_partial_` nodes), the stage
class matching its key, and a component's own `check_config` classmethod when it has one.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from wam_pipe.config.pipeline_file import check_top_level
from wam_pipe.config.signature import RESERVED_KEYS, check_value, signature_of
from wam_pipe.config.targets import TargetError, disallowed_reason, import_target
from wam_pipe.runner.settings import RunSettings


class _Unresolved:
    """Placeholder for a value whose interpolation failed (its error is already reported)."""

    def __repr__(self) -> str:
        return "<unresolved>"


UNRESOLVED = _Unresolved()
_KEY_NOT_FOUND = re.compile(r"Interpolation key '([^']+)' not found")


def _dotted_keys(node: Any, prefix: str = "") -> list[str]:
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            out.append(path)
            out.extend(_dotted_keys(value, path))
    return out


def _interpolation_message(err: Exception, cfg: DictConfig) -> str:
    message = str(err).splitlines()[0]
    found = _KEY_NOT_FOUND.search(message)
    if found:
        raw = OmegaConf.to_container(cfg, resolve=False)
        close = difflib.get_close_matches(found.group(1), _dotted_keys(raw), n=1, cutoff=0.6)
        if close:
            message += f" (did you mean '${{{close[0]}}}'?)"
    return message


def resolve(cfg: Any, file: str, errors: list[str], path: str = "", root: DictConfig | None = None) -> Any:
    """Plain containers with every interpolation resolved; failures become UNRESOLVED plus an error line."""
    root = cfg if root is None else root
    if isinstance(cfg, DictConfig):
        keys, getter = list(cfg.keys()), cfg.__getitem__
    elif isinstance(cfg, ListConfig):
        keys, getter = list(range(len(cfg))), cfg.__getitem__
    else:
        return cfg
    out: Any = {} if isinstance(cfg, DictConfig) else []
    for key in keys:
        child_path = f"{path}.{key}" if path else str(key)
        try:
            value = resolve(getter(key), file, errors, child_path, root)
        except MissingMandatoryValue:
            errors.append(f"{file}: {child_path}: value is missing (???); set it in the file or with {child_path}=...")
            value = UNRESOLVED
        except OmegaConfBaseException as err:
            errors.append(f"{file}: {child_path}: {_interpolation_message(err, root)}")
            value = UNRESOLVED
        if isinstance(out, dict):
            out[str(key)] = value
        else:
            out.append(value)
    return out


def validate(cfg: DictConfig, file: str) -> tuple[dict[str, Any], list[str]]:
    """(resolved plain config, errors). The resolved config is only safe to use when errors is empty."""
    errors: list[str] = []
    resolved = resolve(cfg, file, errors)
    top_errors = check_top_level(resolved, file)
    errors.extend(top_errors)
    errors.extend(_check_run(resolved.get("run") or {}, file))
    allow = resolved.get("allow_targets")
    allow = [a for a in allow if isinstance(a, str)] if isinstance(allow, list) else []
    stages = resolved.get("stages")
    if isinstance(stages, dict):
        for kind, node in stages.items():
            _walk(node, f"stages.{kind}", file, allow, errors, stage_kind=kind, root=resolved)
    return resolved, errors


def _check_run(run: Any, file: str) -> list[str]:
    if not isinstance(run, dict):
        return []
    fields = {f.name: f for f in dataclasses.fields(RunSettings)}
    hints = typing.get_type_hints(RunSettings)
    errors = []
    for key, value in run.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
            hint = f" (did you mean 'run.{close[0]}'?)" if close else f"; run keys are {', '.join(fields)}"
            errors.append(f"{file}: run.{key}: unknown run setting{hint}")
        elif value is not UNRESOLVED:
            problem = check_value(hints[key], value)
            if problem:
                errors.append(f"{file}: run.{key}: {problem}")
    return errors


def _walk(node: Any, path: str, file: str, allow: list[str], errors: list[str], stage_kind: str | None,
          root: dict) -> None:
    if isinstance(node, dict):
        if "_target_" in node:
            _check_component(node, path, file, allow, errors, stage_kind, root)
        for key, value in node.items():
            if key not in RESERVED_KEYS:
                _walk(value, f"{path}.{key}", file, allow, errors, None, root)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _walk(value, f"{path}.{i}", file, allow, errors, None, root)


def _check_reserved(node: dict, path: str, file: str) -> list[str]:
    errors = []
    for key in ("_partial_", "_recursive_"):
        if key in node and not isinstance(node[key], bool):
            errors.append(f"{file}: {path}.{key}: expected true or false, got {node[key]!r}")
    if node.get("_convert_", "all") not in ("none", "partial", "object", "all"):
        errors.append(f"{file}: {path}._convert_: expected one of none, partial, object, all")
    for key in node:
        if isinstance(key, str) and key.startswith("_") and key.endswith("_") and key not in RESERVED_KEYS:
            errors.append(f"{file}: {path}.{key}: unknown reserved key; reserved keys are {', '.join(RESERVED_KEYS)}")
    return errors


def _check_component(node: dict, path: str, file: str, allow: list[str], errors: list[str],
                     stage_kind: str | None, root: dict) -> None:
    target = node["_target_"]
    if target is UNRESOLVED:
        return
    errors.extend(_check_reserved(node, path, file))
    reason = disallowed_reason(target, allow)
    if reason:
        errors.append(f"{file}: {path}._target_: {reason}")
        return
    try:
        obj = import_target(target, known_targets=_known_targets())
    except TargetError as err:
        errors.append(f"{file}: {path}._target_: {err}")
        return
    if stage_kind is not None:
        errors.extend(_check_stage_kind(target, stage_kind, path, file))
    sig = signature_of(obj)
    if sig is not None:
        errors.extend(_check_arguments(node, obj, sig, target, path, file))
    check_config = getattr(obj, "check_config", None)
    if callable(check_config) and not errors_for(path, errors):
        for key, message in check_config(node):
            errors.append(f"{file}: {path}{'.' + key if key else ''}: {message}")


def errors_for(path: str, errors: list[str]) -> bool:
    return any(f": {path}." in e or e.endswith(f": {path}") for e in errors)


def _check_arguments(node: dict, obj: Any, sig: Any, target: str, path: str, file: str) -> list[str]:
    errors = []
    for key, value in node.items():
        if key in RESERVED_KEYS:
            continue
        param = sig.params.get(key)
        if param is None:
            if not sig.var_keyword:
                close = difflib.get_close_matches(str(key), list(sig.params), n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else \
                    f"; its arguments are {', '.join(sig.params) or '(none)'}"
                errors.append(f"{file}: {path}.{key}: unknown argument for {target}{hint}")
            continue
        if value is UNRESOLVED:
            continue
        problem = check_value(param.annotation, value)
        if problem:
            errors.append(f"{file}: {path}.{key}: {problem}")
    if not node.get("_partial_", False) and "_args_" not in node:
        for name, param in sig.params.items():
            if param.required and name not in node:
                errors.append(f"{file}: {path}.{name}: missing required argument of {target}")
    return errors


def _check_stage_kind(target: str, stage_kind: str, path: str, file: str) -> list[str]:
    from wam_pipe.stages import STAGE_KEYS

    if stage_kind not in STAGE_KEYS:
        return []  # an unknown stage kind is reported by the top-level check
    expected = f"wam_pipe.stages.{STAGE_KEYS[stage_kind]}"
    if target.startswith("wam_pipe.stages.") and target != expected:
        return [f"{file}: {path}._target_: the {stage_kind} stage must be {expected}, got {target}"]
    return []


def _known_targets() -> list[str]:
    from wam_pipe.config.catalogue import all_targets

    return all_targets()
