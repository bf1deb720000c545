"""Argument checks shared by the model constructors.

A bad architecture value in a pipeline file is a user mistake, so it raises `ModelConfigError`, which is both a
`UserError` (the CLI prints one line, exit 2, no traceback) and a `ValueError` (what Python callers expect).
"""

from __future__ import annotations

from wam_pipe.core.errors import UserError


class ModelConfigError(UserError, ValueError):
    """An architecture argument that cannot build a model (`"<Component>: <key>=...: what is wrong; what to do"`)."""


def require(condition: bool, message: str) -> None:
    """Raise `ModelConfigError(message)` unless `condition` holds."""
    if not condition:
        raise ModelConfigError(message)
