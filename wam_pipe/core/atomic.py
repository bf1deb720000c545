"""Atomic file writes, one rule for every file wam-pipe writes whole: temp file, fsync it, rename, fsync the directory.

A crash leaves either the old file or the new one under the final name, never a truncated one; what is left over
is a hidden temp file `.<name>.tmp` next to it (overwritten by the next write). Every writer of a whole file uses
this module: run-directory records, checkpoints, eval metrics, shard manifests, build state, training logs.
Streaming writers that keep their own temp name (`ShardWriter`: `shard-000001.tar.tmp`) use `fsync_file` and
`commit`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO, Iterator

from wam_pipe.core.disk_full import no_space_names

TMP_SUFFIX = ".tmp"


def temp_path(path: str | Path) -> Path:
    """Where `path` is written before the rename: `.<name>.tmp` in the same directory (same file system)."""
    path = Path(path)
    return path.with_name(f".{path.name}{TMP_SUFFIX}")


def fsync_dir(directory: str | Path) -> None:
    """Make a rename inside `directory` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(stream: BinaryIO) -> None:
    """Push `stream`'s buffered bytes to the disk."""
    stream.flush()
    os.fsync(stream.fileno())


def commit(tmp: str | Path, path: str | Path) -> None:
    """Rename the finished (already fsynced) `tmp` onto `path`, then fsync the directory so the rename survives."""
    os.replace(tmp, path)
    fsync_dir(Path(path).parent)


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator[BinaryIO]:
    """`with atomic_open(path) as f: f.write(...)`: `path` appears, complete, only if the block exits cleanly."""
    path = Path(path)
    tmp = temp_path(path)
    with no_space_names(path):  # a full disk is one line naming `path` (exit 1), not a traceback
        try:
            with open(tmp, "wb") as stream:
                yield stream
                fsync_file(stream)
        except BaseException:
            tmp.unlink(missing_ok=True)  # frees the space a partial write took; the previous file is intact
            raise
    commit(tmp, path)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_open(path) as stream:
        stream.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    atomic_write_bytes(path, text.encode())
