"""Read a component's constructor signature and check YAML values against its type annotations.

We check types ourselves instead of through OmegaConf structured configs: OmegaConf broadens `Literal`, `Optional[str]`
and `dict[str, float]` to `Any`, and hydra-zen's partial schemas drop required arguments such as a scheduler's
`T_max`. Here every annotation the components use is understood: int, float, bool, str, Path, None, Any, Literal,
Optional/Union, list/tuple/Sequence, dict/Mapping, and component classes (which expect a `_target_` node).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import inspect
import pathlib
import types
import typing
from typing import Any, Literal, TypeVar, Union

# Keys hydra's instantiate interprets; they are never constructor arguments.
RESERVED_KEYS = ("_target_", "_partial_", "_convert_", "_recursive_", "_args_")

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Param:
    """One constructor parameter: its annotation (`Any` when missing or unresolvable) and default."""

    name: str
    annotation: Any
    default: Any  # inspect.Parameter.empty when required

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


@dataclasses.dataclass(frozen=True)
class Signature:
    params: dict[str, Param]
    var_keyword: bool  # accepts **kwargs, so unknown keys are not errors
    var_positional: bool


def _callable_for_signature(target: Any) -> Any:
    return target.__init__ if inspect.isclass(target) and "__init__" in vars(target) else target


@functools.lru_cache(maxsize=None)
def signature_of(target: Any) -> Signature | None:
    """The parameters `target(...)` accepts, or None when Python cannot tell (some C builtins)."""
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    try:
        hints = typing.get_type_hints(_callable_for_signature(target))
    except Exception:  # unresolvable forward references in third-party code: fall back to "Any"
        hints = {}
    params: dict[str, Param] = {}
    var_keyword = var_positional = False
    for name, p in sig.parameters.items():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            var_keyword = True
        elif p.kind is inspect.Parameter.VAR_POSITIONAL:
            var_positional = True
        elif p.kind is not inspect.Parameter.POSITIONAL_ONLY:
            params[name] = Param(name, hints.get(name, Any), p.default)
    return Signature(params, var_keyword, var_positional)


def is_component_node(value: Any) -> bool:
    return isinstance(value, collections.abc.Mapping) and "_target_" in value


def describe_type(annotation: Any) -> str:
    """A short human name for an annotation: `int`, `float`, `one of 'a', 'b'`, `list of float`, ..."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any or annotation is inspect.Parameter.empty:
        return "any value"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        names = [describe_type(a) for a in args if a is not type(None)]
        text = " or ".join(names)
        return f"{text} or null" if type(None) in args else text
    if origin in (list, tuple, collections.abc.Sequence):
        return f"list of {describe_type(args[0])}" if args else "list"
    if origin in (dict, collections.abc.Mapping):
        return f"mapping of {describe_type(args[1])}" if len(args) == 2 else "mapping"
    if _is_tensor_type(annotation):
        return "number (tensor)"
    if annotation in (pathlib.Path, str):
        return "string" if annotation is str else "path"
    if inspect.isclass(annotation) and annotation not in (int, float, bool):
        return f"a component ({annotation.__name__}, a `_target_` node)"
    return getattr(annotation, "__name__", str(annotation))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_value(annotation: Any, value: Any) -> str | None:
    """None when `value` (plain YAML data) fits `annotation`, else a message such as "expected int, got 'many'"."""
    if _fits(annotation, value):
        return None
    return f"expected {describe_type(annotation)}, got {_short(value)}"


def _fits(annotation: Any, value: Any) -> bool:  # noqa: C901 - one branch per annotation kind reads best here
    if annotation is Any or annotation is inspect.Parameter.empty or isinstance(annotation, typing.TypeVar):
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in (Union, types.UnionType):
        return any(_fits(a, value) for a in args)
    if annotation is type(None) or annotation is None:
        return value is None
    if is_component_node(value):
        # A component goes where a component (class) or Any is expected; its own visit checks its arguments.
        return not (annotation in (int, float, bool, str, pathlib.Path) or origin in (list, tuple, dict))
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation in (str, pathlib.Path):
        return isinstance(value, str)
    if origin in (list, tuple, collections.abc.Sequence) or annotation in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],)
        if origin is tuple and args and len(args) != 1:
            return len(value) == len(args) and all(_fits(a, v) for a, v in zip(args, value))
        return not args or all(_fits(args[0], v) for v in value)
    if origin in (dict, collections.abc.Mapping) or annotation is dict:
        if not isinstance(value, collections.abc.Mapping):
            return False
        return len(args) != 2 or all(_fits(args[1], v) for v in value.values())
    if _is_tensor_type(annotation):
        # `lr: float | Tensor` and friends: YAML gives numbers (or nested lists of numbers) for a tensor.
        return isinstance(value, (int, float, list)) and not isinstance(value, bool)
    if inspect.isclass(annotation):
        # Any other class (a model, a mask sampler ...) comes from a `_target_` node, handled above.
        return False
    return True


def _is_tensor_type(annotation: Any) -> bool:
    return inspect.isclass(annotation) and annotation.__module__.startswith("torch") and \
        annotation.__name__ == "Tensor"


def default_for_yaml(param: Param) -> Any:
    """The parameter's default in a form YAML can show (tuples as lists, other objects as strings)."""
    default = param.default
    if default is inspect.Parameter.empty:
        return "???"
    if isinstance(default, tuple):
        return list(default)
    if default is None or isinstance(default, (bool, int, float, str, list, dict)):
        return default
    if isinstance(default, pathlib.Path):
        return str(default)
    return str(default)


def instance_for_check(cls: type[T], node: collections.abc.Mapping[str, Any]) -> T | None:
    """`cls` built from a YAML node for a `check_config` hook (constructors are cheap), or None on a `TypeError`.

    Hydra's `_x_` keys are dropped first. A `TypeError` means wrong argument names or types, which the signature
    check reports already; any other exception (a constructor's own `ValueError`) reaches the caller.
    """
    args = {k: v for k, v in node.items() if not (isinstance(k, str) and k.startswith("_") and k.endswith("_"))}
    try:
        return cls(**args)
    except TypeError:
        return None
