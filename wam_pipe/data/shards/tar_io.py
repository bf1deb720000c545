"""Writing and reading WebDataset tar shards.

Writing: USTAR members with a fixed mtime (0), uid/gid 0, empty user/group names and mode 0444 (what
`webdataset.TarWriter(mtime=0, user="", group="")` writes), so the same samples give byte-identical shards; each
shard goes to `<name>.tmp`, is fsynced and renamed, so a crash never leaves a truncated file under a final name.
Plain `tarfile` rather than `webdataset.TarWriter`: importing webdataset imports torch (3 s on a small machine),
which a build does not otherwise need.

Reading: `read_samples(path, start, stop)` yields samples `start .. stop-1` of a shard with a small USTAR reader;
the samples before `start` cost one 512-byte header read per member, their data is skipped with a seek.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from wam_pipe.core.atomic import TMP_SUFFIX, commit, fsync_file
from wam_pipe.core.disk_full import is_no_space, no_space_message, no_space_names
from wam_pipe.core.errors import RunFailure

SHARD_PATTERN = "shard-{index:06d}.tar"


def shard_name(index: int) -> str:
    return SHARD_PATTERN.format(index=index)


@dataclass
class ShardInfo:
    """What the manifest records about one shard."""

    name: str
    samples: int
    bytes: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "samples": self.samples, "bytes": self.bytes, "sha256": self.sha256}


class _HashingFile:
    """A write-only file wrapper that hashes and counts what passes through (no second read of the shard)."""

    def __init__(self, stream: Any):
        self.stream = stream
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.stream.write(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.stream.flush()


class ShardWriter:
    """Write one shard atomically: `with ShardWriter(path) as writer: writer.write(sample)`; `writer.info` after.

    Samples are dicts `{"__key__": str, "<ext>": bytes, ...}`; members are written in sorted extension order and
    entries starting with "_" are not written. The final file appears only when the block exits without an exception.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + TMP_SUFFIX)
        self.samples = 0
        self.info: ShardInfo | None = None

    def __enter__(self) -> "ShardWriter":
        self._stream = open(self.tmp, "wb")
        self._hashing = _HashingFile(self._stream)
        self._archive = tarfile.open(fileobj=self._hashing, mode="w|", format=tarfile.USTAR_FORMAT)
        return self

    def write(self, sample: dict[str, Any]) -> None:
        """Add one sample: a member `<key>.<ext>` per entry."""
        key = sample["__key__"]
        for ext in sorted(k for k in sample if not k.startswith("_")):
            data = sample[ext]
            member = tarfile.TarInfo(f"{key}.{ext}")
            member.size, member.mtime, member.mode = len(data), 0, 0o444
            member.uid = member.gid = 0
            member.uname = member.gname = ""
            self._archive.addfile(member, io.BytesIO(data))
        self.samples += 1

    def flush(self) -> None:
        """Push what tarfile has handed over so far to the temp file (the crash-test hook uses it)."""
        self._hashing.flush()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            with no_space_names(self.path):
                self._archive.close()  # writes the end-of-archive blocks
                fsync_file(self._stream)
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        finally:
            self._stream.close()
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
            if is_no_space(exc):
                raise RunFailure(no_space_message(self.path, exc)) from None
            return
        commit(self.tmp, self.path)
        self.info = ShardInfo(self.path.name, self.samples, self._hashing.size, self._hashing.digest.hexdigest())


@dataclass
class EncodedSample:
    """A sample as stored: small enough to sit in a shuffle buffer (images are decoded later)."""

    key: str
    image_ext: str
    image: bytes
    meta: bytes
    source: str  # shard name or file, for error messages
    extra_members: tuple[str, ...] = ()  # extensions of members other than the image and the JSON (never read)


class ShardFormatError(ValueError):
    """A shard is not a tar of `<key>.<image>` + `<key>.json` pairs, or is damaged."""


def _member_key(name: str) -> tuple[str, str]:
    base = name.rsplit("/", 1)[-1]
    key, _, ext = base.partition(".")  # WebDataset's rule: the key ends at the first dot of the basename
    return key, ext


_BLOCK = 512
_REGULAR_TYPES = (b"0", b"\0")
_SKIPPED_TYPES = (b"5", b"1", b"2")  # directories and links carry no sample data


def _octal(field: bytes) -> int:
    return int(field.split(b"\0", 1)[0].strip() or b"0", 8)


def _parse_header(header: bytes, where: str) -> tuple[str, int, bytes]:
    """A USTAR header -> (name, size, typeflag), checking its checksum."""
    try:
        checksum = _octal(header[148:156])
        size = _octal(header[124:136])
    except ValueError:
        raise ShardFormatError(f"{where}: corrupt tar header (bad number field)") from None
    if checksum != sum(header[:148]) + 8 * 32 + sum(header[156:]):  # the checksum field counts as spaces
        raise ShardFormatError(f"{where}: corrupt tar header (checksum mismatch)")
    name = header[:100].split(b"\0", 1)[0]
    prefix = header[345:500].split(b"\0", 1)[0] if header[257:262] == b"ustar" else b""
    full = (prefix + b"/" + name if prefix else name).decode("utf-8", "replace")
    return full, size, header[156:157]


def _members(stream: Any, where: str, want: Callable[[str], bool]) -> Iterator[tuple[str, bytes | None]]:
    """Yield `(name, data)` of each regular member; `data` is None (skipped by a seek) when `want(name)` is false.

    A small reader of our own instead of `tarfile`: shards are plain USTAR written by `ShardWriter`, and parsing
    headers here takes half the time per sample. pax / GNU long-name members are refused with a clear message.
    `stream` needs `read(n)` and `seek(n, 1)` only (a forward skip: remote streams implement it as read-and-discard).
    """
    while True:
        header = stream.read(_BLOCK)
        if len(header) < _BLOCK:  # every tar ends with zero blocks; a file that just stops was cut short
            raise ShardFormatError(f"{where}: truncated (the file ends without tar's end-of-archive blocks)")
        if header.count(0) == _BLOCK:
            return  # end-of-archive
        name, size, kind = _parse_header(header, where)
        padded = size + (-size) % _BLOCK
        if kind in _SKIPPED_TYPES:
            stream.seek(padded, 1)
            continue
        if kind not in _REGULAR_TYPES:
            raise ShardFormatError(f"{where}: member {name!r} has tar type {kind!r} (pax/GNU extensions are not "
                                   "supported); rebuild the shard with `wam-pipe shard build`")
        if not want(name):
            stream.seek(padded, 1)
            yield name, None
            continue
        data = stream.read(size)
        if len(data) < size:
            raise ShardFormatError(f"{where}: truncated member {name!r}")
        stream.seek(padded - size, 1)
        yield name, data


def read_samples(path: Path, start: int = 0, stop: int | None = None) -> Iterator[EncodedSample]:
    """Samples `start .. stop-1` (all from `start` when `stop` is None) of one shard file, in stored order.

    Members of samples before `start` are skipped with a seek (their headers are still read: tar has no index).

    Raises:
        ShardFormatError: a corrupt or truncated tar, or a sample without exactly one image and one JSON member.
    """
    path = Path(path)
    with open(path, "rb", buffering=1 << 16) as stream:
        yield from read_samples_from(stream, path.name, start, stop)


def read_samples_from(stream: Any, where: str, start: int = 0, stop: int | None = None) -> Iterator[EncodedSample]:
    """`read_samples` over an open binary stream (a local file, or a remote one); `where` names it in errors."""
    state = {"index": 0, "key": None}

    def want(name: str) -> bool:
        key = _member_key(name)[0]
        if key != state["key"]:
            state["index"] += state["key"] is not None
            state["key"] = key
        return state["index"] >= start

    key, group = None, []
    for name, data in _members(stream, where, want):
        member_key, ext = _member_key(name)
        if member_key != key and group:  # a group only holds members of wanted samples
            yield _assemble(where, key, group)
            group = []
        if stop is not None and state["index"] >= stop:
            return
        key = member_key
        if data is not None:
            group.append((ext, data))
    if group:
        yield _assemble(where, key, group)


def _assemble(where: str, key: str | None, group: list[tuple[str, bytes]]) -> EncodedSample:
    images = [(ext, data) for ext, data in group if ext in ("jpg", "jpeg", "png")]
    metas = [data for ext, data in group if ext == "json"]
    if len(images) != 1 or len(metas) != 1:
        found = ", ".join(sorted(ext for ext, _ in group))
        raise ShardFormatError(f"{where}: sample {key}: expected one image and one .json member, found [{found}]")
    extras = tuple(sorted(ext for ext, _ in group if ext not in ("jpg", "jpeg", "png", "json")))
    return EncodedSample(str(key), images[0][0], images[0][1], metas[0], where, extras)
