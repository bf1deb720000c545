"""Reading a pipeline YAML file and checking its closed top level.

A pipeline file has exactly these top-level keys: `version`, `name`, `vars`, `run`, `allow_targets`, `stages`.
`stages` holds any subset of the five stage kinds, each a `_target_` node (a `step` trains on a `load`).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from wam_pipe.core.errors import ConfigError, UserError
from wam_pipe.core.safe_yaml import check_yaml
from wam_pipe.stages.slots import BY_KEY, SLOT_KEYS, slot_problems
from wam_pipe.config.messages import interpolation_message

_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
TOP_LEVEL_KEYS = ("version", "name", "vars", "run", "allow_targets", "stages")
SUPPORTED_VERSIONS = (1,)


def load_yaml(path: str | Path) -> DictConfig:
    """Parse the file into an OmegaConf config; a missing file or YAML error is one clear line."""
    path = Path(path)
    if not path.is_file():
        hint = " (it is a directory)" if path.is_dir() else ""
        raise UserError(f"{path}: no such pipeline file{hint}; check the path (shipped pipelines are in pipelines/)")
    try:
        check_yaml(path.read_text(), path)  # alias bombs and recursive aliases, before OmegaConf expands them
        cfg = OmegaConf.load(path)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise UserError(f"{path}: {where}invalid YAML: {err.problem or err.context}") from err
    except yaml.YAMLError as err:
        raise UserError(f"{path}: invalid YAML: {err}") from err
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not a text file ({err.reason}); a pipeline is a UTF-8 YAML file") from err
    except OmegaConfBaseException as err:  # e.g. `size: ${vars` (OmegaConf parses interpolations on load)
        raise ConfigError(_interpolation_errors(path) or [f"{path}: {_omegaconf_message(err)}"]) from None
    if not isinstance(cfg, DictConfig):
        raise UserError(f"{path}: a pipeline file must be a YAML mapping with keys {', '.join(TOP_LEVEL_KEYS)}")
    return cfg


def _omegaconf_message(err: Exception) -> str:
    key = getattr(err, "full_key", None)
    return f"{key}: {interpolation_message(err)}" if key else interpolation_message(err)


def _interpolation_errors(path: Path) -> list[str]:
    """`FILE: key: invalid interpolation: ...` for every string of the file OmegaConf cannot parse, all at once."""
    data = yaml.safe_load(path.read_text())  # it parsed as YAML already; OmegaConf refused a string in it
    errors: list[str] = []

    def visit(node: Any, key: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                visit(v, f"{key}.{k}" if key else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                visit(v, f"{key}.{i}")
        elif isinstance(node, str) and "${" in node:
            try:
                OmegaConf.create({"value": node})
            except OmegaConfBaseException as err:
                errors.append(f"{path}: {key}: {interpolation_message(err)}")

    visit(data, "")
    return errors


def _suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_top_level(data: dict[str, Any], file: str) -> list[str]:
    """Errors in the closed top level and in the shape of `stages` (data is the resolved plain dict)."""
    errors = []
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            errors.append(f"{file}: {key}: unknown top-level key{_suggest(key, TOP_LEVEL_KEYS)}; allowed keys are "
                          f"{', '.join(TOP_LEVEL_KEYS)} (free-form values belong under vars)")
    version = data.get("version")
    if version is None:
        errors.append(f"{file}: version: missing; add `version: 1` at the top of the file")
    elif version not in SUPPORTED_VERSIONS:
        errors.append(f"{file}: version: unsupported pipeline version {version!r}; this wam-pipe reads version 1")
    if not isinstance(data.get("name"), str) or not data.get("name"):
        errors.append(f"{file}: name: missing or not a string; give the pipeline a name (it names the run dir)")
    elif not _NAME.fullmatch(data["name"]):
        errors.append(f"{file}: name: {data['name']!r} must be letters, digits, '.', '_' or '-' and not start with "
                      "'.' (it names the run dir runs/<name>, which must stay inside runs/)")
    for key in ("vars", "run"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            errors.append(f"{file}: {key}: expected a mapping, got {data[key]!r}")
    allow = data.get("allow_targets")
    if allow is not None and not (isinstance(allow, list) and all(isinstance(a, str) for a in allow)):
        errors.append(f"{file}: allow_targets: expected a list of import path patterns such as 'my_lab.*'")
    errors.extend(_check_stages(data.get("stages"), file))
    return errors


def _check_stages(stages: Any, file: str) -> list[str]:
    if stages is None:
        return [f"{file}: stages: missing; a pipeline needs at least one of {', '.join(SLOT_KEYS)}"]
    if not isinstance(stages, dict) or not stages:
        return [f"{file}: stages: expected a mapping of stage kinds ({', '.join(SLOT_KEYS)}) to `_target_` nodes"]
    errors = []
    errors.extend(f"{file}: stages.{key}: {message}" for key, message in slot_problems(stages))
    for kind, node in stages.items():
        if kind not in SLOT_KEYS:
            errors.append(f"{file}: stages.{kind}: unknown stage kind{_suggest(kind, SLOT_KEYS)}; stage kinds are "
                          f"{', '.join(SLOT_KEYS)}")
        elif not isinstance(node, dict) or "_target_" not in node:
            errors.append(f"{file}: stages.{kind}: expected a `_target_` node such as "
                          f"`_target_: {BY_KEY[kind].target}`")
    return errors
