"""A local cache of remote shards (`load.cache_dir`): each shard is downloaded once, reused across epochs and runs.

Layout: `CACHE_DIR/<sha256 of the location URL, 16 hex>/<name>` (another shard set never collides). A shard is
filled atomically: streamed to `<name>.<pid>.tmp` while its size and sha256 are checked against the manifest's, then
renamed; readers only ever see whole, checked files. Workers and ranks that miss the same shard at once each
download it and the last rename wins (same bytes). A cached file of the manifest's size is trusted (its hash was
checked when it was filled); one of another size (the shard set was rebuilt) is downloaded again.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from wam_pipe.core.errors import UserError
from wam_pipe.data.location import ShardLocation, sha256_stream


class ShardCache:
    """Whole shards of one remote location, kept under `cache_dir`.

    Args:
        cache_dir: the cache folder (created when needed; may be shared by runs and by the ranks of a node).
        location: where the shards come from.
    """

    def __init__(self, cache_dir: str | Path, location: ShardLocation):
        self.location = location
        self.folder = Path(cache_dir).expanduser() / hashlib.sha256(location.spec.encode()).hexdigest()[:16]

    def path(self, entry: dict[str, Any]) -> Path:
        """The local copy of the shard of manifest entry `entry`, downloading it first when needed."""
        target = self.folder / entry["name"]
        if target.is_file() and target.stat().st_size == entry["bytes"]:
            return target
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        url = self.location.url(entry["name"])
        try:
            with self.location.open(entry["name"], entry["bytes"]) as stream, open(tmp, "wb") as sink:
                digest, size = sha256_stream(stream, sink)
                sink.flush()
                os.fsync(sink.fileno())
            if size != entry["bytes"]:
                raise UserError(f"{url}: {size} bytes, the manifest says {entry['bytes']}; the shard set changed or "
                                "is damaged: run `wam-pipe shard verify` on it")
            if entry.get("sha256") and digest != entry["sha256"]:
                raise UserError(f"{url}: sha256 differs from the manifest's; the shard set changed or is damaged: "
                                "run `wam-pipe shard verify` on it")
            os.replace(tmp, target)
        except OSError as err:
            raise UserError(f"{tmp}: cannot write the shard cache ({err.strerror or err}); free space or set "
                            "load.cache_dir elsewhere") from None
        finally:
            tmp.unlink(missing_ok=True)
        return target
