"""Exceptions that the CLI turns into clean one-line messages instead of tracebacks.

- `UserError`: the user can fix it (bad YAML key, wrong type, missing file, corrupt input). Exit code 2.
- `ConfigError`: a `UserError` carrying several lines, one per problem (`FILE: dotted.key: message`).
- `RunFailure`: the run itself failed for a reason we can explain (NaN loss, too many skipped images). Exit code 1.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input. `lines` are printed one per line, without a traceback (exit 2)."""

    exit_code = 2

    def __init__(self, *lines: str):
        self.lines = [str(line) for line in lines]
        super().__init__("\n".join(self.lines))


class ConfigError(UserError):
    """All the problems found in one pipeline file, each `FILE: dotted.key: message`."""

    def __init__(self, errors: list[str]):
        super().__init__(*errors)
        self.errors = list(errors)


class RunFailure(UserError):
    """The run stopped for a reason we can state in one line (exit 1, no traceback)."""

    exit_code = 1
