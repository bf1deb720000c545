"""`shard build --out URL`: build in a local staging folder, upload each finished shard, the manifest last.

Order (a reader of the URL never sees a half-written set): each shard is uploaded under its final name as soon as
the build has renamed it (a background thread, while the next shard is built; an object store's PUT makes the
object appear whole or not at all), then every shard the URL still lacks (reused from an earlier run), and only
then the manifest (`manifest.json`, or the part manifest of a `--num-parts` build). An interrupted upload resumes:
the staging folder keeps the finished build (its rerun is a no-op) and shards already at the URL with their
recorded size are not sent again (with `--overwrite`, every shard is sent again).

Staging defaults to `~/.cache/wam-pipe/staging/<sha256 of the URL, 16 hex>` (`--staging DIR` to choose).
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from wam_pipe.core.errors import UserError
from wam_pipe.data.location import ShardLocation


def default_staging(url: str) -> Path:
    """The staging folder of a build uploaded to `url`."""
    return Path.home() / ".cache" / "wam-pipe" / "staging" / hashlib.sha256(url.encode()).hexdigest()[:16]


class ShardUploader:
    """Uploads finished shards on one background thread; `submit(path)` during the build, `finish()` after.

    Errors are kept and raised by `finish()` (the build itself is not interrupted: its shards stay staged).
    """

    def __init__(self, location: ShardLocation):
        self.location = location
        self.uploaded: list[str] = []
        self._queue: queue.Queue[Path | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="shard-upload", daemon=True)
        self._thread.start()

    def submit(self, path: Path) -> None:
        self._queue.put(Path(path))

    def _run(self) -> None:
        while (path := self._queue.get()) is not None:
            if self._error is not None:
                continue
            try:
                self.location.put(path, path.name)
                self.uploaded.append(path.name)
            except BaseException as err:  # noqa: BLE001 - re-raised by finish() in the caller's thread
                self._error = err

    def finish(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


@dataclass
class PublishResult:
    url: str
    uploaded: int  # shards sent by `publish` (after the build)
    kept: int  # shards already at the URL with their recorded size


def publish(staging: Path, manifest_name: str, location: ShardLocation, progress: bool = True,
            skip: set[str] | frozenset[str] = frozenset(), resend_all: bool = False) -> PublishResult:
    """Upload the shards of the staged manifest that `location` lacks (or holds at another size), then the manifest.

    `skip`: shards already sent by this run (`ShardUploader.uploaded`). `resend_all` (`--overwrite`): send every
    other shard too, since a shard of the same name and size at the URL may come from another build.

    Raises:
        UserError: an upload failed (one line naming the URL); rerun to resume.
    """
    manifest_file = Path(staging) / manifest_name
    manifest: dict[str, Any] = json.loads(manifest_file.read_text())
    entries = manifest["shards"]
    remote = location.sizes([entry["name"] for entry in entries])
    todo = [entry for entry in entries if entry["name"] not in skip
            and (resend_all or remote.get(entry["name"]) != entry["bytes"])]
    for entry in tqdm(todo, desc="upload", unit="shard", disable=not progress or not todo):
        location.put(Path(staging) / entry["name"], entry["name"])
    location.put(manifest_file, manifest_name)  # last: the set is published when its manifest appears
    return PublishResult(location.url(manifest_name), len(todo), len(entries) - len(todo) - len(skip))
