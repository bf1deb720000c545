"""Command-line overrides in Hydra's grammar, strict about typos and aware of constructor signatures.

    key=value      change a key that exists, or set a parameter of the enclosing `_target_` that the file
                   leaves at its default (no `+` needed)
    +key=value     add a key that does not exist (e.g. under vars, or for a `**kwargs` component)
    ++key=value    add or change
    ~key           delete a key (`~key=value` only if it currently has that value)
    list.0.x=1     list elements by index (`list[0].x=1` is accepted too)

Values follow Hydra: `1e-4` is a float, `[1,2]` a list, `null` None, quotes make strings. Any other key is an
error naming the closest existing key. One run is one configuration: sweeps (`a=1,2`, `choice(...)`, `range(...)`)
and Hydra's config groups and packages (`+group@pkg=x`) are refused.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import GrammarParseError, OmegaConfBaseException

from wam_pipe.core.signature import signature_of
from wam_pipe.core.targets import TargetError, import_allowed
from wam_pipe.config.messages import interpolation_message
from wam_pipe.core.settings import RunSettings

# The `--help` text of a command's `key=value ...` arguments (`wam-pipe run`, `validate`, `bench-step`).
OVERRIDES_HELP = ("overrides in Hydra's grammar: key=value, +key=value (add), ++key=value (add or change), ~key "
                  "(delete); e.g. stages.step.optimizer.lr=1e-4 run.epochs=10")
_INDEX = re.compile(r"\[(\d+)\]")


def _normalize(text: str) -> str:
    """`a.b[0].c=1` -> `a.b.0.c=1` (Hydra's key grammar has no brackets)."""
    key, sep, value = text.partition("=")
    return _INDEX.sub(r".\1", key) + sep + value


def _child(node: Any, part: str) -> Any:
    """The child node `part` of a DictConfig/ListConfig without resolving interpolations, or None."""
    if isinstance(node, DictConfig):
        return node._get_node(part) if part in node else None
    if isinstance(node, ListConfig) and part.isdigit() and int(part) < len(node):
        return node._get_node(int(part))
    return None


def _walk(cfg: DictConfig, parts: list[str]) -> tuple[Any, int]:
    """Follow `parts` as far as they exist: (deepest existing node, number of parts matched)."""
    node: Any = cfg
    for i, part in enumerate(parts):
        child = _child(node, part)
        if child is None:
            return node, i
        node = child
    return node, len(parts)


def _all_keys(node: Any, prefix: str = "") -> list[str]:
    keys = []
    if isinstance(node, DictConfig):
        items = [(str(k), node._get_node(k)) for k in node.keys()]
    elif isinstance(node, ListConfig):
        items = [(str(i), node._get_node(i)) for i in range(len(node))]
    else:
        return keys
    for key, child in items:
        path = f"{prefix}.{key}" if prefix else key
        keys.append(path)
        keys.extend(_all_keys(child, path))
    return keys


def _target_params(node: Any, allow_targets: list[str]) -> list[str] | None:
    """Constructor parameter names of a `_target_` node (None when not a usable target node)."""
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return None
    target = node._get_node("_target_")._value()
    if not isinstance(target, str):
        return None
    try:  # never imports a target the allowlist refuses, not even to read its signature
        sig = signature_of(import_allowed(target, allow_targets))
    except TargetError:
        return None
    return list(sig.params) if sig else None


def _allow_targets(cfg: DictConfig) -> list[str]:
    """The file's `allow_targets` strings (none when they do not resolve: validation reports that)."""
    try:
        allow = cfg.get("allow_targets")
        allow = list(allow) if isinstance(allow, ListConfig) else []
    except OmegaConfBaseException:
        return []
    return [a for a in allow if isinstance(a, str)]


def _run_settings() -> list[str]:
    """The `run:` keys (a `run.x=...` override may set any of them, written in the file or not)."""
    import dataclasses

    return [f.name for f in dataclasses.fields(RunSettings)]


def _list_message(node: ListConfig, parent: str, missing: str) -> str:
    """An index past the end of a list, or a name used on a list: Hydra cannot grow a list one item at a time."""
    size = len(node)
    what = f"index {missing} is past its end" if missing.isdigit() else f"'{missing}' is not an index"
    indices = f"indices 0..{size - 1}" if size else "no indices"
    items = OmegaConf.to_container(node, resolve=False)
    now = "[" + ",".join(str(i) for i in items) + "]"
    example = f"{parent}={now} (its current value)" if len(now) <= 80 and all(
        isinstance(i, (str, int, float)) for i in items) else f"{parent}=[...]"
    return (f"'{parent}' is a list of {size} item{'s' if size != 1 else ''} ({indices}); {what}; to add or remove "
            f"items set the whole list: {example}")


def _unknown_key_message(cfg: DictConfig, key: str, parts: list[str], node: Any, matched: int,
                         params: list[str] | None) -> str:
    parent = ".".join(parts[:matched])
    missing = parts[matched]
    if isinstance(node, ListConfig):
        return _list_message(node, parent, missing)
    siblings = [str(k) for k in node.keys()] if isinstance(node, DictConfig) else []
    close = difflib.get_close_matches(missing, siblings + (params or []), n=1, cutoff=0.6)
    if close:
        return f"no such key; did you mean '{f'{parent}.' if parent else ''}{close[0]}'?"
    leaf = parts[-1]
    elsewhere = [k for k in _all_keys(cfg) if k.split(".")[-1] == leaf]
    if elsewhere:
        return f"no such key; '{leaf}' exists at {', '.join(elsewhere[:3])}"
    where = f"'{parent}'" if parent else "the top level"
    return f"no such key under {where} (use +{key}=... to add a new key)"


def apply_overrides(cfg: DictConfig, overrides: list[str], file: str) -> list[str]:
    """Apply `overrides` to `cfg` in place; return one error line per override that could not be applied."""
    errors: list[str] = []
    parser = OverridesParser.create()
    allow_targets = _allow_targets(cfg)
    for text in overrides:
        try:
            (override,) = parser.parse_overrides([_normalize(text)])
        except OverrideParseException as err:
            errors.append(f"{file}: override '{text}': cannot parse: {str(err).splitlines()[0]}")
            continue
        key = override.key_or_group
        refusal = _refusal(override, key)
        if refusal:
            errors.append(f"{file}: {key}: {refusal} (override '{text}')" if key else
                          f"{file}: override '{text}': {refusal}")
            continue
        parts = key.split(".")
        node, matched = _walk(cfg, parts)
        exists = matched == len(parts)
        value = override.value()
        try:
            if override.is_delete():
                errors.extend(_delete(cfg, key, parts, exists, override, text, file))
            elif override.is_force_add():
                OmegaConf.update(cfg, key, value, merge=True, force_add=True)
            elif override.is_add():
                if exists:
                    errors.append(f"{file}: {key}: already exists (override '{text}'); use {key}=... to change it")
                elif isinstance(node, ListConfig):
                    errors.append(f"{file}: {key}: {_list_message(node, '.'.join(parts[:matched]), parts[matched])}"
                                  f" (override '{text}')")
                else:
                    OmegaConf.update(cfg, key, value, merge=True, force_add=True)
            elif exists:
                OmegaConf.update(cfg, key, value, merge=True)
            else:
                params = _target_params(node, allow_targets) if matched else None
                if matched == 0 or (matched == 1 and parts[0] == "run"):
                    params = _run_settings() if parts[0] == "run" and len(parts) == 2 else None
                    matched = len(parts) - 1 if params is not None else matched
                if params is not None and matched == len(parts) - 1 and parts[-1] in params:
                    OmegaConf.update(cfg, key, value, merge=True, force_add=True)
                else:
                    message = _unknown_key_message(cfg, key, parts, node, matched, params)
                    errors.append(f"{file}: {key}: {message} (override '{text}')")
        except GrammarParseError as err:
            errors.append(f"{file}: {key}: {interpolation_message(err)} (override '{text}')")
        except Exception as err:  # OmegaConf refuses, e.g. a dict merged into a list
            errors.append(f"{file}: {key}: cannot apply override '{text}': {str(err).splitlines()[0]}")
    return errors


def _refusal(override: Any, key: str) -> str | None:
    """Why an override that Hydra's grammar accepts makes no sense for one run (None when it is fine)."""
    if not key:
        return "empty key; an override is key=value, e.g. run.epochs=3"
    if override.package is not None:
        return (f"package syntax (@{override.package}) is not supported: wam-pipe has no config groups; name the "
                f"full dotted key, e.g. +vars.{key}=...")
    if override.is_sweep_override():
        return ("sweeps are not supported, one run is one configuration; give one value (a list is written "
                "[1,2])")
    return None


def _delete(cfg: DictConfig, key: str, parts: list[str], exists: bool, override: Any, text: str,
            file: str) -> list[str]:
    if not exists:
        return [f"{file}: {key}: cannot delete, no such key (override '{text}')"]
    parent = OmegaConf.select(cfg, ".".join(parts[:-1])) if len(parts) > 1 else cfg
    leaf = parts[-1]
    expected = override.value()
    if expected is not None and OmegaConf.select(cfg, key) != expected:
        return [f"{file}: {key}: not deleted, its value is not {expected!r} (override '{text}')"]
    with open_dict(parent):
        if isinstance(parent, ListConfig):
            del parent[int(leaf)]
        else:
            del parent[leaf]
    return []
