"""A full disk (or quota) while writing is one line naming the path, not a traceback.

    with no_space_names(path):
        write(path)

turns `OSError(ENOSPC | EDQUOT)` raised inside the block into a `RunFailure` (exit 1: the environment, not the
user's input): "PATH: no space left on the device; free some space and rerun the same command: it resumes ...".
Every writer of wam-pipe writes a temp file and renames it, so what was finished before the disk filled is intact
and a rerun resumes from it (finished shards, the last checkpoint, the log up to that checkpoint).
"""

from __future__ import annotations

import errno
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from wam_pipe.core.errors import RunFailure

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def is_no_space(err: BaseException | None) -> bool:
    """`err`, or an error it was raised while handling, is a full disk (torch.save, for one, turns the OSError into
    a RuntimeError about its zip writer's position)."""
    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, OSError) and err.errno in NO_SPACE:
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False


def _no_space_error(err: BaseException) -> OSError:
    while not (isinstance(err, OSError) and err.errno in NO_SPACE):
        err = err.__cause__ or err.__context__
    return err


def no_space_message(path: str | Path | None, err: BaseException) -> str:
    err = _no_space_error(err)
    where = path if path is not None else (err.filename or "a file")
    return (f"{where}: no space left on the device ({err.strerror or 'ENOSPC'}); free some space and rerun the same "
            "command: finished work is kept and it resumes from there")


@contextmanager
def no_space_names(path: str | Path) -> Iterator[None]:
    """Re-raise a full-disk `OSError` inside the block as a one-line `RunFailure` naming `path`."""
    try:
        yield
    except Exception as err:
        if is_no_space(err):
            raise RunFailure(no_space_message(path, err)) from None
        raise
