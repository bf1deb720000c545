"""Walking a resolved pipeline config: the `_target_` nodes in it, and the marker of a value that failed to resolve.

Shared by validation (`validate.py`), the data checks (`data_checks.py`) and building (`build.py`).
"""

from __future__ import annotations

from typing import Any


class _Unresolved:
    """Placeholder for a value whose interpolation failed (its error is already reported)."""

    def __repr__(self) -> str:
        return "<unresolved>"


UNRESOLVED = _Unresolved()


def target_nodes(node: Any, path: str) -> list[tuple[str, dict]]:
    """Every `_target_` node at or below `node`, under every key (reserved ones included), pre-order, as
    (dotted path, node)."""
    found: list[tuple[str, dict]] = []
    if isinstance(node, dict):
        if "_target_" in node and node["_target_"] is not UNRESOLVED:
            found.append((path, node))
        for key, value in node.items():
            found.extend(target_nodes(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(target_nodes(value, f"{path}.{i}"))
    return found
