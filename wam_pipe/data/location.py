"""Where a shard set lives: a local folder or a URL, opened the same way for the manifest and every shard.

Accepted (`shards:`, `shard verify|inspect|merge`, `shard build --out`, `bench load --remote`):
- a local path, or `file:///abs/path`;
- `s3://bucket/prefix` (s3fs; `pip install 'wam-pipe[s3]'`), `gs://bucket/prefix` (gcsfs; `'wam-pipe[gcs]'`),
  `http://host/prefix` and `https://...` (fsspec's HTTP file system, aiohttp);
- `pipe:CMD` (WebDataset's convention): `CMD` is a shell command that writes one file to stdout, with `{name}`
  replaced by the file's name (`manifest.json`, `shard-000000.tar`, ...), e.g. `pipe:curl -sf http://h/set/{name}`.
  Read-only; shard sizes are checked while reading instead of at setup.
Any other `scheme://` is refused (`UserError`), so that `s3://b/x` can never become the local path `s3:/b/x`.

Remote reads are streamed forward: a skip (`seek(n, 1)`) reads and discards, so the tar reader works unchanged
(`tar_io.read_samples_from`). Every remote read has a timeout and bounded retries (`IOSettings`): a dropped
connection is reopened and read forward to where it broke, at most `retries` times with a doubling back-off, then
the read fails with one line naming the URL. Credentials never come from here: s3fs/gcsfs read them from the
environment (`AWS_ACCESS_KEY_ID`, ...) and their standard files (`~/.aws/credentials`, gcloud's), and
`IOSettings.storage_options` refuses credential keys. S3-compatible stores: `storage_options: {endpoint_url: ...}`
or the `AWS_ENDPOINT_URL` environment variable (read by botocore).
"""

from __future__ import annotations

import hashlib
import os
import re
import select
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import fsspec

from wam_pipe.core.errors import UserError

FSSPEC_SCHEMES = ("s3", "gs", "gcs", "http", "https")
SCHEMES_HELP = "a local path, file://, s3://, gs://, http(s):// or pipe:CMD"
PIPE_PREFIX = "pipe:"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# Keys that would put a secret into a pipeline file (or its logged config): refused in `storage_options`.
CREDENTIAL_KEYS = ("key", "secret", "token", "password", "aws_access_key_id", "aws_secret_access_key",
                   "aws_session_token", "session_token", "access_key", "secret_key", "credentials", "client_kwargs")
_EXTRA = {"s3": "s3", "gs": "gcs", "gcs": "gcs"}  # scheme -> pyproject extra that installs its file system


class RemoteNotFound(UserError):
    """A remote file that is not there (404, no such key): callers may say what should have made it."""


def _root(err: BaseException) -> BaseException:
    """The error behind fsspec's HTTP `FileNotFoundError` (it turns every failed HEAD/GET, a refused connection
    included, into one, with the real error as its cause)."""
    while isinstance(err, FileNotFoundError) and err.__cause__ is not None:
        err = err.__cause__
    return err


def _not_found(err: BaseException) -> bool:
    err = _root(err)
    status = getattr(err, "status", None) or getattr(err, "code", None)
    return isinstance(err, FileNotFoundError) or status == 404


def _failure(err: BaseException, url: str, tries: int | None = None) -> UserError:
    err = _root(err)
    return (RemoteNotFound if _not_found(err) else UserError)(describe_error(err, url, tries))


def scheme_problem(spec: str) -> str | None:
    """Why `spec` is not an accepted shard location, or None (used by `wam-pipe validate`)."""
    spec = str(spec)
    if spec.startswith(PIPE_PREFIX):
        return None if "{name}" in spec else (f"{spec!r}: a pipe: command must contain {{name}} (replaced by "
                                              "manifest.json and each shard's name)")
    match = _SCHEME.match(spec)
    if match and match.group(1).lower() not in FSSPEC_SCHEMES + ("file",):
        return f"{spec!r}: unknown URL scheme {match.group(1)!r}; use {SCHEMES_HELP}"
    return None


def is_url(spec: str | Path) -> bool:
    """Whether `spec` names a remote location (not a local path or file:// URL)."""
    spec = str(spec)
    match = _SCHEME.match(spec)
    return spec.startswith(PIPE_PREFIX) or bool(match and match.group(1).lower() != "file")


@dataclass
class IOSettings:
    """Timeouts, retries and file-system options for remote reads.

    Args:
        timeout: seconds a connect or a read may wait before it counts as failed. Default 60.
        retries: further tries after a failed open or read (each reopens and reads forward to the break), with a
            back-off of 0.5 s doubling up to 8 s. Default 3.
        storage_options: extra keyword arguments for the fsspec file system (e.g. `{endpoint_url: http://...}` for
            an S3-compatible store); credential keys are refused (use the environment or ~/.aws). Default {}.
    """

    timeout: float = 60.0
    retries: int = 3
    storage_options: dict[str, Any] = field(default_factory=dict)

    def problems(self) -> list[tuple[str, str]]:
        """(key, message) pairs for bad values (validate and setup)."""
        found = []
        if not self.timeout > 0:
            found.append(("io_timeout", f"must be > 0 seconds, got {self.timeout}"))
        if self.retries < 0:
            found.append(("io_retries", f"must be >= 0, got {self.retries}"))
        if not isinstance(self.storage_options, dict):
            found.append(("storage_options", f"must be a mapping, got {type(self.storage_options).__name__}"))
        else:
            secret = sorted(k for k in self.storage_options if str(k).lower() in CREDENTIAL_KEYS)
            if secret:
                found.append(("storage_options", f"{secret} must not be in a pipeline file; give credentials through "
                                                 "the environment (AWS_ACCESS_KEY_ID, ...) or ~/.aws / gcloud files"))
        return found


class ShardLocation:
    """A folder of shard files, local or remote: `url(name)`, `open(name)`, `read_bytes(name)`, `sizes(names)`.

    Cheap to pickle (DataLoader workers): the fsspec file system is made lazily in each process.
    """

    def __init__(self, spec: str | Path, io: IOSettings | None = None):
        self.spec = str(spec)
        problem = scheme_problem(self.spec)
        if problem:
            raise UserError(problem)
        self.io = io or IOSettings()
        match = _SCHEME.match(self.spec)
        self.scheme = "pipe" if self.spec.startswith(PIPE_PREFIX) else (match.group(1).lower() if match else "")
        if self.scheme == "file":
            self.spec = self.spec[len("file://"):]
            self.scheme = ""
        self._fs: Any = None
        self._fs_pid = -1

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fs": None, "_fs_pid": -1}

    def __str__(self) -> str:
        return self.spec

    @property
    def is_local(self) -> bool:
        return self.scheme == ""

    @property
    def path(self) -> Path:
        """The local folder (only for local locations)."""
        return Path(self.spec)

    def url(self, name: str) -> str:
        """The full URL (or path) of file `name` in this location."""
        if self.scheme == "pipe":
            return self.spec.replace("{name}", name)
        if self.is_local:
            return str(Path(self.spec) / name)
        return self.spec.rstrip("/") + "/" + name

    # --- the file system ---------------------------------------------------------------------------------------

    def fs(self) -> Any:
        """The fsspec file system of this location (one per process)."""
        if self._fs is None or self._fs_pid != os.getpid():
            self._fs = make_filesystem(self.scheme, self.io)
            self._fs_pid = os.getpid()
        return self._fs

    def _fs_path(self, name: str) -> str:
        url = self.url(name)
        return url if self.scheme in ("http", "https") else url.split("://", 1)[1]

    # --- reading -----------------------------------------------------------------------------------------------

    def open(self, name: str, size: int | None = None) -> Any:
        """A forward-only binary stream over file `name` (a local file is opened directly).

        With `size` (the manifest's), a stream that ends early is a failed read (retried), not a short file.
        """
        if self.is_local:
            return open(self.path / name, "rb", buffering=1 << 16)
        return RetryingStream(lambda: self._open_raw(name, size), self.url(name), self.io, size)

    def _open_raw(self, name: str, size: int | None = None) -> Any:
        if self.scheme == "pipe":
            return PipeStream(self.url(name)[len(PIPE_PREFIX):], self.io.timeout)
        # block_size=0: one streamed GET (http.server and many HTTP stores do not serve byte ranges); for object
        # stores large blocks keep the request count low.
        block = 0 if self.scheme in ("http", "https") else 8 << 20
        extra = {"size": size} if size and self.scheme in ("http", "https") else {}  # known: no HEAD first
        return self.fs().open(self._fs_path(name), "rb", block_size=block, **extra)

    def read_bytes(self, name: str, size: int | None = None) -> bytes:
        """The whole of file `name` (errors as `UserError` naming the URL)."""
        with self.open(name, size) as stream:
            return stream.read()

    def sizes(self, names: list[str]) -> dict[str, int | None]:
        """Byte size of each of `names` (None when missing). Empty for `pipe:` (sizes are checked while reading)."""
        if self.is_local:
            return {n: (self.path / n).stat().st_size if (self.path / n).is_file() else None for n in names}
        if self.scheme == "pipe":
            return {}
        return with_retries(lambda: self._remote_sizes(names), self.spec, self.io)

    def _remote_sizes(self, names: list[str]) -> dict[str, int | None]:
        fs = self.fs()
        if self.scheme in ("http", "https"):  # one HEAD each: an HTTP folder has no reliable listing
            found = {}
            for name in names:
                try:
                    found[name] = int(fs.info(self._fs_path(name))["size"])
                except FileNotFoundError:
                    found[name] = None
            return found
        try:
            listing = fs.ls(self._fs_path(""), detail=True, refresh=True)  # one listing for the whole folder
        except FileNotFoundError:  # an empty prefix is no folder in an object store
            listing = []
        by_name = {str(item["name"]).rstrip("/").rsplit("/", 1)[-1]: int(item.get("size") or 0) for item in listing}
        return {name: by_name.get(name) for name in names}

    def glob(self, pattern: str) -> list[str]:
        """Names of the files in this location matching `pattern` (not for http or pipe)."""
        if self.is_local:
            return sorted(p.name for p in self.path.glob(pattern))
        if self.scheme in ("http", "https", "pipe"):
            raise UserError(f"{self.spec}: cannot list files over {self.scheme}; name the manifest files directly")
        found = with_retries(lambda: self.fs().glob(self._fs_path(pattern), refresh=True), self.spec, self.io)
        return sorted(str(p).rsplit("/", 1)[-1] for p in found)

    # --- writing (object stores and file://) -------------------------------------------------------------------

    def put(self, local: Path, name: str) -> None:
        """Upload local file `local` as `name`. An object store's PUT is atomic (the object appears complete)."""
        if self.scheme in ("http", "https", "pipe"):
            raise UserError(f"{self.spec}: cannot write over {self.scheme}; upload to s3:// or gs:// (or a folder)")
        with_retries(lambda: self.fs().put_file(str(local), self._fs_path(name)), self.url(name), self.io)


    def copy_from(self, source: "ShardLocation", name: str) -> None:
        """Copy file `name` from another folder of the same store (server-side)."""
        with_retries(lambda: self.fs().copy(source._fs_path(name), self._fs_path(name)), self.url(name), self.io)


def make_filesystem(scheme: str, io: IOSettings) -> Any:
    """An fsspec file system for `scheme` with `io`'s timeouts and retries (optional packages imported here)."""
    options: dict[str, Any] = dict(io.storage_options)
    if scheme == "s3":
        options.setdefault("config_kwargs", {}).update(
            connect_timeout=io.timeout, read_timeout=io.timeout,
            retries={"max_attempts": 1, "mode": "standard"})  # our retries; botocore's would multiply them
        options.setdefault("skip_instance_cache", True)
    elif scheme in ("http", "https"):
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=None, connect=io.timeout, sock_connect=io.timeout, sock_read=io.timeout)
        options["client_kwargs"] = {"timeout": timeout}
        options.setdefault("skip_instance_cache", True)
    elif scheme in ("gs", "gcs"):
        options.setdefault("requests_timeout", io.timeout)
    try:
        fs = fsspec.filesystem("gs" if scheme == "gcs" else scheme, **options)
    except ImportError as err:
        extra = _EXTRA.get(scheme, "s3")
        raise UserError(f"{scheme}:// needs an optional package ({err}); pip install 'wam-pipe[{extra}]'") from None
    if scheme == "s3":
        fs.retries = 1  # s3fs's own retry loop (default 5, with sleeps) would multiply ours too
    return fs


def _transient(err: BaseException) -> bool:
    """Whether a failed request may succeed when tried again (not: missing, forbidden, bad request)."""
    err = _root(err)
    status = getattr(err, "status", None) or getattr(err, "code", None)
    if isinstance(err, (FileNotFoundError, PermissionError, UserError)) or status in (400, 401, 403, 404):
        return False
    return True


def describe_error(err: BaseException, url: str, tries: int | None = None) -> str:
    """One line naming `url` and what to do, for an exception raised by a read."""
    status = getattr(err, "status", None) or getattr(err, "code", None)
    if _not_found(err):
        return f"{url}: not found; check the URL (and that the upload finished: the manifest is written last)"
    if isinstance(err, PermissionError) or status in (401, 403):
        return (f"{url}: access denied ({status or 'forbidden'}); check the credentials in the environment "
                "(AWS_ACCESS_KEY_ID, ...) or ~/.aws, and the bucket's permissions")
    after = f" after {tries} tries" if tries and tries > 1 else ""
    message = str(err).splitlines()[0] if str(err) else type(err).__name__
    return (f"{url}: cannot read ({type(err).__name__}: {message}){after}; check that the host is reachable "
            "(endpoint_url) or raise load.io_timeout / load.io_retries")


def with_retries(call: Callable[[], Any], url: str, io: IOSettings) -> Any:
    """`call()`, retried on transient errors (`io.retries` more tries, doubling back-off); `UserError` at the end."""
    for attempt in range(io.retries + 1):
        try:
            return call()
        except UserError:
            raise
        except Exception as err:  # noqa: BLE001 - any library's network error; classified, then one line
            if not _transient(err) or attempt == io.retries:
                raise _failure(err, url, attempt + 1) from None
            time.sleep(min(0.5 * 2**attempt, 8.0))
    raise AssertionError("unreachable")


class RetryingStream:
    """A forward-only reader over a remote file that reopens (and reads forward) after a failure.

    `read(n)`, `seek(n, 1)` (read and discard; `seek(0, 1)` / `tell()`), `close()`. Errors after the retries are
    `UserError`s naming the URL; a stream that ends before `size` bytes counts as a failure.
    """

    def __init__(self, opener: Callable[[], Any], url: str, io: IOSettings, size: int | None = None):
        self.opener, self.url, self.io, self.size = opener, url, io, size
        self.position = 0
        self._raw: Any = None
        self._failures = 0

    def _reopen(self) -> None:
        self._close_raw()
        raw = self.opener()
        skip = self.position
        while skip > 0:  # forward to where the previous stream broke
            chunk = raw.read(min(skip, 1 << 20))
            if not chunk:
                raise EOFError(f"stream ended at {self.position - skip} of {self.position} bytes while resuming")
            skip -= len(chunk)
        self._raw = raw

    def _read_raw(self, n: int) -> bytes:
        while True:
            try:
                if self._raw is None:
                    self._reopen()
                data = self._raw.read(n)
                if not data and n and self.size is not None and self.position < self.size:
                    raise EOFError(f"stream ended at byte {self.position}, the manifest says {self.size}")
                return data
            except UserError:
                raise
            except Exception as err:  # noqa: BLE001 - any library's network error
                self._close_raw()
                self._failures += 1
                if not _transient(err) or self._failures > self.io.retries:
                    raise _failure(err, self.url, self._failures) from None
                time.sleep(min(0.5 * 2 ** (self._failures - 1), 8.0))

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while chunk := self.read(1 << 20):
                parts.append(chunk)
            return b"".join(parts)
        out = bytearray()
        while len(out) < n:
            chunk = self._read_raw(n - len(out))
            if not chunk:
                break
            out += chunk
            self.position += len(chunk)
        return bytes(out)

    def seek(self, offset: int, whence: int = 0) -> int:
        target = offset if whence == 0 else self.position + offset
        if whence not in (0, 1) or target < self.position:
            raise OSError(f"{self.url}: a remote stream only skips forward")
        while self.position < target:
            if not self.read(min(target - self.position, 1 << 20)):
                break
        return self.position

    def tell(self) -> int:
        return self.position

    def _close_raw(self) -> None:
        if self._raw is not None:
            try:
                self._raw.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail; nothing to keep
                pass
            self._raw = None

    def close(self) -> None:
        self._close_raw()

    def __enter__(self) -> "RetryingStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class PipeStream:
    """stdout of a shell command (`pipe:CMD`), with a read timeout; a non-zero exit is a failed read."""

    def __init__(self, command: str, timeout: float):
        self.command, self.timeout = command, timeout
        self.process = subprocess.Popen(command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def read(self, n: int) -> bytes:
        fd = self.process.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], self.timeout)
        if not ready:
            raise TimeoutError(f"no output for {self.timeout:g} s")
        data = os.read(fd, n)
        if not data:
            code = self.process.wait(timeout=self.timeout)
            if code != 0:
                error = self.process.stderr.read().decode(errors="replace").strip().splitlines()
                raise OSError(f"command exited with {code}" + (f": {error[-1]}" if error else ""))
        return data

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process.stdout.close()
        self.process.stderr.close()


def sha256_stream(stream: Any, sink: Any = None, chunk: int = 1 << 22) -> tuple[str, int]:
    """(sha256, bytes) of what `stream` yields to its end, copying it to `sink` when given."""
    digest, total = hashlib.sha256(), 0
    while data := stream.read(chunk):
        digest.update(data)
        total += len(data)
        if sink is not None:
            sink.write(data)
    return digest.hexdigest(), total

