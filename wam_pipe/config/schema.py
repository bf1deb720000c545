"""JSON Schema of a pipeline file, generated from the components' signatures and docstrings.

Editors use it (yaml-language-server) to complete keys, show each argument's description and default, and flag
unknown keys and wrong types while typing. `schemas/pipeline.schema.json` in the repository is the output of
`wam-pipe schema`; a test keeps the two equal.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import pathlib
import re
import types
import typing
from typing import Any, Literal, Union

from wam_pipe.config.catalogue import components
from wam_pipe.core.signature import default_for_yaml, signature_of
from wam_pipe.core.settings import RunSettings
from wam_pipe.stages.slots import SLOTS

_INTERPOLATION = {"type": "string", "pattern": r"^.*\$\{.+\}.*$", "description": "an interpolation such as ${vars.x}"}
_COMPONENT = {"$ref": "#/definitions/component"}
# An untyped value may be anything, but a mapping given there is a component node and must be a valid one (so
# `chanels:` inside a model node is flagged).
_UNTYPED = {"anyOf": [{"not": {"type": "object"}}, _COMPONENT]}
_ARG = re.compile(r"^(\w+)(?: \([^)]*\))?:\s*(.*)$")

# Constructor parameters typed `Any` (hydra hands them built objects of many classes) that take a component node.
COMPONENT_SLOTS = {
    "wam_pipe.stages.Step": ("embedder", "extractor", "optimizer", "losses", "scheduler", "jnd", "discriminator",
                             "disc_optimizer"),
    "wam_pipe.stages.Eval": ("data",),
    "wam_pipe.models.Watermarker": ("embedder", "extractor", "jnd"),
}


def docstring_args(obj: Any) -> dict[str, str]:
    """Argument descriptions from a Google-style `Args:` section (continuation lines joined)."""
    doc = inspect.getdoc(obj) or ""
    if inspect.isclass(obj) and "__init__" in vars(obj):
        doc += "\n" + (inspect.getdoc(obj.__init__) or "")
    out: dict[str, str] = {}
    in_args, current = False, None
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Attributes:"):
            in_args, current = True, None
            continue
        if not in_args:
            continue
        if line and not line.startswith(" "):
            in_args = False
            continue
        indent = len(line) - len(line.lstrip())
        match = _ARG.match(stripped)
        if match and indent == 4:
            current = match.group(1)
            out[current] = match.group(2).strip()
        elif current and stripped:
            out[current] += " " + stripped
    return out


def type_schema(annotation: Any) -> dict[str, Any]:
    """JSON Schema for a parameter annotation; primitives also accept an interpolation string."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any or annotation is inspect.Parameter.empty:
        return dict(_UNTYPED)
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (Union, types.UnionType):
        options = [type_schema(a) for a in args]
        return {} if {} in options else {"anyOf": options}
    if annotation is type(None):
        return {"type": "null"}
    primitive = {bool: "boolean", int: "integer", float: "number", str: "string", pathlib.Path: "string"}
    if annotation in primitive:
        return {"anyOf": [{"type": primitive[annotation]}, _INTERPOLATION]} if annotation is not str else \
            {"type": "string"}
    if origin in (list, tuple, collections.abc.Sequence) or annotation in (list, tuple):
        item = type_schema(args[0]) if args and (origin is not tuple or len(args) == 1 or args[1] is Ellipsis) else {}
        return {"anyOf": [{"type": "array", "items": item}, _INTERPOLATION]}
    if origin in (dict, collections.abc.Mapping) or annotation is dict:
        values = type_schema(args[1]) if len(args) == 2 else {}
        return {"type": "object", "additionalProperties": values}
    if inspect.isclass(annotation):
        return dict(_COMPONENT)
    return {}


def param_schema(target: str, name: str, param: Any) -> dict[str, Any]:
    """The schema of one constructor parameter: its annotation's, or a component node for a `COMPONENT_SLOTS` one."""
    if name not in COMPONENT_SLOTS.get(target, ()):
        return type_schema(param.annotation)
    options = [dict(_COMPONENT), _INTERPOLATION]
    if not param.required and param.default is None:
        options.append({"type": "null"})
    return {"anyOf": options}


def _json_default(value: Any) -> Any:
    return value if value is None or isinstance(value, (bool, int, float, str, list, dict)) else str(value)


def component_schema(target: str, obj: Any, summary: str) -> dict[str, Any]:
    sig = signature_of(obj)
    descriptions = docstring_args(obj)
    properties: dict[str, Any] = {
        "_target_": {"const": target},
        "_partial_": {"type": "boolean", "description": "build a callable that takes the run-time arguments"},
        "_convert_": {"enum": ["none", "partial", "object", "all"]},
        "_recursive_": {"type": "boolean"},
        "_args_": {"type": "array", "items": dict(_UNTYPED)},
    }
    if sig is not None:
        for name, param in sig.params.items():
            prop = dict(param_schema(target, name, param))
            if name in descriptions:
                prop["description"] = descriptions[name]
            if not param.required:
                prop["default"] = _json_default(default_for_yaml(param))
            properties[name] = prop
    schema: dict[str, Any] = {"type": "object", "description": summary, "properties": properties,
                              "required": ["_target_"]}
    if sig is not None and not sig.var_keyword:
        schema["additionalProperties"] = False
    return schema


def _run_schema() -> dict[str, Any]:
    hints = typing.get_type_hints(RunSettings)
    descriptions = docstring_args(RunSettings)
    properties = {}
    for field in dataclasses.fields(RunSettings):
        prop = dict(type_schema(hints[field.name]))
        prop["default"] = _json_default(field.default)
        if field.name in descriptions:
            prop["description"] = descriptions[field.name]
        properties[field.name] = prop
    return {"type": "object", "properties": properties, "additionalProperties": False}


def _definition_name(target: str) -> str:
    return target.replace(".", "_")


def pipeline_schema() -> dict[str, Any]:
    found = components()
    definitions = {_definition_name(c.target): component_schema(c.target, c.obj, c.summary) for c in found}
    known = sorted(c.target for c in found)
    definitions["other_component"] = {
        "type": "object", "required": ["_target_"],
        "description": "a component outside wam-pipe's catalogue (its target must be in allow_targets)",
        # not a catalogue target, nor a misspelled wam_pipe one (which must match a catalogue definition)
        "properties": {"_target_": {"type": "string", "not": {"anyOf": [{"enum": known},
                                                                          {"pattern": r"^wam_pipe\."}]}}},
    }
    definitions["component"] = {"anyOf": [{"$ref": f"#/definitions/{name}"} for name in definitions]}
    stage_properties = {}
    for slot in SLOTS:
        kind = slot.key
        name = _definition_name(slot.target)
        refs = [{"$ref": f"#/definitions/{name}"}] if name in definitions else []
        stage_properties[kind] = {"anyOf": refs + [{"$ref": "#/definitions/other_component"}]}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://github.com/wam-pipe/wam-pipe/schemas/pipeline.schema.json",
        "title": "wam-pipe pipeline",
        "description": "A wam-pipe pipeline file. Run it with `wam-pipe run FILE`; check it with `wam-pipe validate FILE`.",
        "type": "object",
        "required": ["version", "name", "stages"],
        "additionalProperties": False,
        "properties": {
            "version": {"const": 1, "description": "pipeline file format version"},
            "name": {"type": "string", "description": "pipeline name (default run dir: runs/<name>)"},
            "vars": {"type": "object", "description": "free-form values for ${vars.x} interpolation"},
            "run": _run_schema(),
            "allow_targets": {"type": "array", "items": {"type": "string"},
                              "description": "extra import path patterns a _target_ may use, e.g. my_lab.*"},
            "stages": {"type": "object", "properties": stage_properties, "additionalProperties": False},
        },
        "definitions": definitions,
    }
