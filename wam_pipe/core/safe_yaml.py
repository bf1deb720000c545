"""Reading YAML we do not trust (pipeline files, run-dir configs, a checkpoint's stored config) with bounded size.

YAML aliases make a small file expand into a huge tree: nine levels of `[*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]`
are 10^9 values in under 1 KB (an "alias bomb"), and `a: &a [*a]` is a value that contains itself. PyYAML builds
aliases as shared references, which is cheap, but every consumer that walks the result (OmegaConf, our validation,
`json.dumps`) expands them: minutes of CPU and gigabytes of memory, or a RecursionError.

`check_yaml` composes the document (the node graph, where an alias is one more reference to its anchor's node, so
this costs the file's size) and computes the size and depth the tree would have once expanded, memoised per node,
without expanding it. A cycle is a recursive alias. Limits: `MAX_VALUES` values, `MAX_DEPTH` levels of nesting, far
above any real pipeline (the largest shipped one has ~400 values and 6 levels).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from wam_pipe.core.errors import UserError

MAX_VALUES = 100_000
MAX_DEPTH = 64


def check_yaml(text: str, source: str | Path) -> None:
    """Raise `UserError` naming `source` when the YAML `text` would expand beyond the limits or into itself.

    Malformed YAML is left to the caller's own parser and its error messages (this returns quietly).
    """
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return
    except RecursionError:  # PyYAML's composer recurses once per level of nesting
        raise UserError(f"{source}: the YAML nests deeper than {MAX_DEPTH} levels, so it is refused") from None
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded values, expanded depth)
    for node in nodes:
        if node is not None:
            values, depth = _expanded(node, sizes, set(), source)
            _check_limits(values, depth, source)


def safe_load(text: str, source: str | Path) -> Any:
    """`yaml.safe_load` after `check_yaml`."""
    check_yaml(text, source)
    return yaml.safe_load(text)


def _check_limits(values: int, depth: int, source: str | Path) -> None:
    if values > MAX_VALUES:
        raise UserError(f"{source}: the YAML expands to more than {MAX_VALUES:,} values through its aliases (&anchor "
                        "/ *alias), so it is refused; write the values out, or check where this file came from")
    if depth > MAX_DEPTH:
        raise UserError(f"{source}: the YAML nests deeper than {MAX_DEPTH} levels, so it is refused")


def _expanded(node: yaml.Node, sizes: dict[int, tuple[int, int]], path: set[int], source: str | Path
              ) -> tuple[int, int]:
    """(values, depth) of `node` once every alias is expanded (the recursion is bounded by MAX_DEPTH)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in path:
        mark = node.start_mark
        raise UserError(f"{source}: line {mark.line + 1}: a recursive alias (a value that contains itself, like "
                        "`a: &a [*a]`); YAML for wam-pipe must be a tree")
    if len(path) > MAX_DEPTH:
        _check_limits(0, len(path), source)
    if isinstance(node, yaml.ScalarNode):
        result = (1, 0)
    else:
        path.add(key)
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value))
        values, depth = 1, 0
        for child in children:
            child_values, child_depth = _expanded(child, sizes, path, source)
            values, depth = values + child_values, max(depth, child_depth + 1)
            if values > MAX_VALUES:
                _check_limits(values, depth, source)
        path.discard(key)
        result = (values, depth)
    sizes[key] = result
    return result
