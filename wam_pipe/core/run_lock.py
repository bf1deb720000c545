"""An exclusive lock on a directory that one wam-pipe process writes (a run dir, a shard build's `--out`).

Two `wam-pipe run`s on one run dir used to both exit 0 with the config of one, the checkpoint of the other and their
log lines interleaved. Now the writer holds `flock` on a lock file beside the directory (`<parent>/.<name>.lock`,
beside rather than inside, so that `--overwrite` and the run-dir rules never see it) for as long as it writes; a
second writer gets one line, "in use by PID on HOST", and exit 2.

The holder removes the lock file when it finishes, so a finished run or build leaves nothing beside its directory.
Stale locks: the kernel drops a `flock` when its holder dies (kill -9, OOM, power loss), so a lock file left by a dead
process is taken over without any check of PIDs; the PID and host recorded in it are only for the message. Works on
local filesystems and on NFS (Linux emulates `flock` with NFS byte-range locks).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path
from typing import Any

from wam_pipe.core.errors import UserError


def lock_path(directory: Path, suffix: str = "") -> Path:
    """The lock file of `directory`: `<parent>/.<name><suffix>.lock`."""
    directory = Path(directory).absolute()
    return directory.parent / f".{directory.name}{suffix}.lock"


class DirLock:
    """`with DirLock(directory, option="--output-dir"):` holds the lock of `directory` (see the module doc).

    Args:
        directory: the directory to guard (need not exist; its parent is created).
        option: how the user chooses another directory, for the messages.
        suffix: separates independent writers of one directory (a shard build's parts).
        unwritable: the words for a directory that cannot be created or written, for the messages.

    Raises (on enter):
        UserError: another live process holds the lock, or the lock file cannot be created (the parent is not
            writable, lies under a file, ...): the directory is unusable either way.
    """

    def __init__(self, directory: Path, option: str = "--output-dir", suffix: str = "",
                 unwritable: str = "cannot be written"):
        self.directory = Path(directory)
        self.option, self.unwritable = option, unwritable
        self.path = lock_path(self.directory, suffix)
        self._fd: int | None = None

    def __enter__(self) -> "DirLock":
        for _ in range(10):
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise UserError(f"{self.directory}: in use by {holder}; wait for it to finish, or choose another "
                                f"{self.option}") from None
            except OSError as err:  # a filesystem without locks: proceed unguarded rather than refuse every run
                os.close(fd)
                if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP):
                    raise
                return self
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the holder we waited for removed the file as it finished: lock the new one
        else:
            raise UserError(f"{self.directory}: its lock file {self.path} keeps changing; is another wam-pipe "
                            f"starting there? Retry, or choose another {self.option}")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            where = err.filename or self.path
            raise UserError(f"{self.directory}: {self.unwritable} ({err.strerror or err}: {where}); choose another "
                            f"{self.option}") from None

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            # Removed while still locked, so the directory is left as it was; whoever opened this file meanwhile
            # sees that it is no longer at the path (`_same_file`) and locks a new one.
            self.path.unlink(missing_ok=True)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _read_holder(fd: int) -> str:
    """"PID n on HOST" from the lock file's record ("another process" while the holder is still writing it)."""
    try:
        fields = os.pread(fd, 256, 0).decode(errors="replace").split()
    except OSError:
        fields = []
    if len(fields) >= 2:
        return f"PID {fields[0]} on {fields[1]}"
    return "another process"
