"""Argument checks shared by the model constructors.

A bad architecture value in a pipeline file is a user mistake, so it raises `ModelConfigError`, which is both a
`UserError` (the CLI prints one line, exit 2, no traceback) and a `ValueError` (what Python callers expect).
"""

from __future__ import annotations

from typing import Any

from wam_pipe.core.errors import UserError


class ModelConfigError(UserError, ValueError):
    """An architecture argument that cannot build a model (`"<Component>: <key>=...: what is wrong; what to do"`)."""


def require(condition: bool, message: str) -> None:
    """Raise `ModelConfigError(message)` unless `condition` holds."""
    if not condition:
        raise ModelConfigError(message)


def nbits_mismatch(embedder_nbits: Any, extractor_nbits: Any) -> bool:
    """The one rule that an embedder and an extractor carry the same number of bits.

    True when both are known and differ; None (unknown: a component without `nbits`, or a YAML node whose target
    has no default) never mismatches. `Watermarker`, `Step` and the step's `wam-pipe validate` check call this and
    word the message for their audience.
    """
    return embedder_nbits is not None and extractor_nbits is not None and embedder_nbits != extractor_nbits
