"""Validate a composed pipeline before anything runs, collecting every error (`FILE: dotted.key: message`).

Checks, in order: interpolations resolve; the closed top level and the shape of `stages`; the `run:` block against
`RunSettings` (types and value ranges); then every `_target_` node at any depth, those in `_args_` included:

1. the allowlist, on the target strings only, for every node of every stage. If any target is refused, nothing is
   imported (and nothing built): the refused targets are the only stage errors reported;
2. the import, with a suggestion, and where the imported object really comes from (`targets.import_allowed`);
3. per node: reserved keys, the stage class matching its key, unknown arguments with a suggestion, value types,
   positional `_args_`, missing required arguments (not for `_partial_` nodes), then its children, and last,
   when the node's own keys were clean and every target below it imported, the component's own `check_config`
   classmethod when it has one (value ranges and cross-field rules);
4. pipeline-wide data checks (`data_checks.py`): instance masks asked of shards that carry none.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import typing
from typing import Any

from omegaconf import DictConfig, ListConfig
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from wam_pipe.config.optim_check import optimizer_problems
from wam_pipe.config.data_checks import instance_problems
from wam_pipe.config.messages import interpolation_message
from wam_pipe.config.nodes import UNRESOLVED, target_nodes
from wam_pipe.config.pipeline_file import check_top_level
from wam_pipe.core.signature import RESERVED_KEYS, check_value, signature_of
from wam_pipe.core.targets import TargetError, TargetNotAllowed, disallowed_reason, import_allowed
from wam_pipe.core.settings import RunSettings, value_problems
from wam_pipe.stages.slots import BY_KEY
from wam_pipe.config.catalogue import all_targets


@dataclasses.dataclass
class Report:
    """What validation found.

    Attributes:
        resolved: the config with every interpolation resolved (UNRESOLVED where that failed).
        errors: one `FILE: dotted.key: message` line per problem.
        refused: a `_target_` was refused by the allowlist: nothing may be imported or built from this config.
    """

    resolved: dict[str, Any]
    errors: list[str]
    refused: bool = False


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
            errors.append(f"{file}: {child_path}: {interpolation_message(err, root)}")
            value = UNRESOLVED
        if isinstance(out, dict):
            out[str(key)] = value
        else:
            out.append(value)
    return out


def validate(cfg: DictConfig, file: str) -> tuple[dict[str, Any], list[str]]:
    """(resolved plain config, errors). The resolved config is only safe to use when errors is empty."""
    report = check(cfg, file)
    return report.resolved, report.errors


def check(cfg: DictConfig, file: str) -> Report:
    """Every check of the module docstring; see `Report`."""
    errors: list[str] = []
    resolved = resolve(cfg, file, errors)
    errors.extend(check_top_level(resolved, file))
    errors.extend(_check_run(resolved.get("run") or {}, file))
    allow = resolved.get("allow_targets")
    allow = [a for a in allow if isinstance(a, str)] if isinstance(allow, list) else []
    stages = resolved.get("stages")
    stages = stages if isinstance(stages, dict) else {}
    nodes = [found for kind, node in stages.items() for found in target_nodes(node, f"stages.{kind}")]
    refused = _refused_by_name(nodes, file, allow)
    if refused:
        return Report(resolved, errors + refused + [_refusal_note(file, len(refused), "imported or built")],
                      refused=True)
    objects, import_errors = {}, {}
    for path, node in nodes:
        try:
            objects[path] = import_allowed(node["_target_"], allow, known_targets=_known_targets())
        except TargetNotAllowed as err:
            refused.append(f"{file}: {path}._target_: {err}")
        except TargetError as err:
            import_errors[path] = f"{file}: {path}._target_: {err}"
    if refused:  # allowed as strings, but reaching outside the allowed modules: build nothing either
        return Report(resolved, errors + refused + [_refusal_note(file, len(refused), "built")], refused=True)
    walk = _Walk(file, errors, objects, import_errors)
    for kind, node in stages.items():
        walk.visit(node, f"stages.{kind}", stage_kind=kind)
    errors.extend(instance_problems(stages, file))
    return Report(resolved, errors)


def _refused_by_name(nodes: list[tuple[str, dict]], file: str, allow: list[str]) -> list[str]:
    """The allowlist on the target strings alone: imports nothing."""
    refused = []
    for path, node in nodes:
        reason = disallowed_reason(node["_target_"], allow, known_targets=_known_targets())
        if reason:
            refused.append(f"{file}: {path}._target_: {reason}")
    return refused


def _refusal_note(file: str, count: int, what: str) -> str:
    many = count > 1
    return (f"{file}: stages: nothing was {what} because of the refused target{'s' if many else ''} above; fix or "
            f"trust {'them' if many else 'it'} to see the other checks")


def _check_run(run: Any, file: str) -> list[str]:
    if not isinstance(run, dict):
        return []
    fields = {f.name: f for f in dataclasses.fields(RunSettings)}
    hints = typing.get_type_hints(RunSettings)
    errors, typed = [], {}
    for key, value in run.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
            hint = f" (did you mean 'run.{close[0]}'?)" if close else f"; run keys are {', '.join(fields)}"
            errors.append(f"{file}: run.{key}: unknown run setting{hint}")
        elif value is not UNRESOLVED:
            problem = check_value(hints[key], value)
            if problem:
                errors.append(f"{file}: run.{key}: {problem}")
            else:
                typed[key] = value
    errors.extend(f"{file}: run.{key}: {message}" for key, message in value_problems(typed))
    return errors


def errors_for(path: str, errors: list[str]) -> bool:
    return any(f": {path}." in e or f": {path}:" in e for e in errors)


class _Walk:
    """The per-node checks (step 3 of the module docstring), once every target is allowed."""

    def __init__(self, file: str, errors: list[str], objects: dict[str, Any], import_errors: dict[str, str]):
        self.file, self.errors, self.objects, self.import_errors = file, errors, objects, import_errors

    def visit(self, node: Any, path: str, stage_kind: str | None = None) -> None:
        if isinstance(node, list):
            for i, value in enumerate(node):
                self.visit(value, f"{path}.{i}")
            return
        if not isinstance(node, dict):
            return
        component = "_target_" in node and node["_target_"] is not UNRESOLVED
        if component:
            self._check_node(node, path, stage_kind)
            # Its cross-field check needs its own keys right and every value resolved; errors inside its children
            # (found below) do not stop it, so a run reports both.
            cross_check = not errors_for(path, self.errors)
        for key, value in node.items():
            if key == "_args_" and component and isinstance(value, list):
                for i, item in enumerate(value):
                    self.visit(item, f"{path}._args_.{i}")
            elif key not in RESERVED_KEYS:
                self.visit(value, f"{path}.{key}")
        if component and cross_check:
            self._check_config(node, path)

    def _check_node(self, node: dict, path: str, stage_kind: str | None) -> None:
        file, target = self.file, node["_target_"]
        self.errors.extend(_check_reserved(node, path, file))
        if path in self.import_errors:
            self.errors.append(self.import_errors[path])
            return
        obj = self.objects[path]
        if stage_kind is not None:
            self.errors.extend(_check_stage_kind(target, stage_kind, path, file))
        sig = signature_of(obj)
        if sig is not None:
            self.errors.extend(_check_arguments(node, obj, sig, target, path, file))
        if not errors_for(path, self.errors) and UNRESOLVED not in node.values():
            for key, message in optimizer_problems(obj, node):
                self.errors.append(f"{file}: {path}{'.' + key if key else ''}: {message}")

    def _check_config(self, node: dict, path: str) -> None:
        """The component's own cross-field checks (it may read its children's signatures: all were imported)."""
        check_config = getattr(self.objects.get(path), "check_config", None)
        if not callable(check_config) or any(p == path or p.startswith(f"{path}.") for p in self.import_errors):
            return
        try:
            problems = check_config(node)
        except TargetError:  # a child's target could not be imported: reported at that child
            return
        for key, message in problems:
            self.errors.append(f"{self.file}: {path}{'.' + key if key else ''}: {message}")


def _check_reserved(node: dict, path: str, file: str) -> list[str]:
    errors = []
    for key in ("_partial_", "_recursive_"):
        if key in node and not isinstance(node[key], bool):
            errors.append(f"{file}: {path}.{key}: expected true or false, got {node[key]!r}")
    if node.get("_convert_", "all") not in ("none", "partial", "object", "all"):
        errors.append(f"{file}: {path}._convert_: expected one of none, partial, object, all")
    if "_args_" in node and not isinstance(node["_args_"], list):
        errors.append(f"{file}: {path}._args_: expected a list of positional arguments, got {node['_args_']!r}")
    for key in node:
        if isinstance(key, str) and key.startswith("_") and key.endswith("_") and key not in RESERVED_KEYS:
            errors.append(f"{file}: {path}.{key}: unknown reserved key; reserved keys are {', '.join(RESERVED_KEYS)}")
    return errors


def _positional_names(obj: Any) -> list[str] | None:
    """The parameter names positional arguments fill, in order (None when Python cannot tell)."""
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in params if p.kind in kinds]


def _check_positional(node: dict, obj: Any, sig: Any, target: str, path: str, file: str) -> tuple[list[str], set]:
    """Errors in `_args_` (count, types, an argument also given by name) and the parameter names it fills."""
    args = node.get("_args_")
    names = _positional_names(obj) if isinstance(args, list) else None
    if names is None:
        return [], set()
    errors = []
    if len(args) > len(names) and not sig.var_positional:
        errors.append(f"{file}: {path}._args_: {target} takes at most {len(names)} positional argument"
                      f"{'s' if len(names) != 1 else ''} ({', '.join(names) or 'none'}), got {len(args)}")
    for i, (name, value) in enumerate(zip(names, args)):
        if name in node:
            errors.append(f"{file}: {path}.{name}: given twice, as _args_.{i} and by name; keep one")
        param = sig.params.get(name)
        problem = check_value(param.annotation, value) if param and value is not UNRESOLVED else None
        if problem:
            errors.append(f"{file}: {path}._args_.{i}: ({name}) {problem}")
    return errors, set(names[: len(args)])


def _check_arguments(node: dict, obj: Any, sig: Any, target: str, path: str, file: str) -> list[str]:
    errors, positional = _check_positional(node, obj, sig, target, path, file)
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
    if not node.get("_partial_", False):
        for name, param in sig.params.items():
            if param.required and name not in node and name not in positional:
                errors.append(f"{file}: {path}.{name}: missing required argument of {target}")
    return errors


def _check_stage_kind(target: str, stage_kind: str, path: str, file: str) -> list[str]:
    if stage_kind not in BY_KEY:
        return []  # an unknown stage kind is reported by the top-level check
    expected = BY_KEY[stage_kind].target
    if target.startswith("wam_pipe.stages.") and target != expected:
        return [f"{file}: {path}._target_: the {stage_kind} stage must be {expected}, got {target}"]
    return []


def _known_targets() -> list[str]:
    return all_targets()
