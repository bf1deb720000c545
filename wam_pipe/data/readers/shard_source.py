"""The shard source of the load stage: units are the manifest's shards, items are encoded samples.

`open_shards(spec, io)` reads and checks the manifest of a local folder or a URL (`data/location.py`): every shard
present with its recorded size (one listing for s3/gs, one HEAD per shard for http, while reading for `pipe:`).
`ShardSource` reads pieces of shards (`tar_io.read_samples_from`) and decodes them (`decode.decode_stored`).

Remote pieces are streamed: the samples before a piece's start are read and discarded (a forward-only stream cannot
seek), so the plan (`epoch_plan.py`) and the batches are the same as from a local folder. The cost is bounded: only
the first piece of each worker's span starts inside a shard, so at most one shard per (rank x worker) per epoch is
partly read twice (measured in benchmarks/RESULTS.md, "Shards from URLs"). With `cache_dir`, whole shards are
downloaded once (`shard_cache.py`) and read locally with seeks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from wam_pipe.core.errors import UserError
from wam_pipe.data.location import IOSettings, ShardLocation
from wam_pipe.data.readers.decode import decode_stored, preload_decoder
from wam_pipe.data.readers.epoch_plan import Piece
from wam_pipe.data.readers.mask_select import MaskSelector
from wam_pipe.data.readers.shard_cache import ShardCache
from wam_pipe.data.shards.manifest import read_manifest_at
from wam_pipe.data.shards.tar_io import EncodedSample, ShardFormatError, read_samples_from


class ShardSource:
    """Shards of one manifest as a loader `Source`.

    Args:
        location: the shard folder or URL (holding `manifest.json`); a str/Path is a local folder or URL.
        manifest: the parsed manifest.
        decoder: "torchvision" or "pil" (image decoder).
        cache_dir: keep downloaded remote shards here (None: stream them every epoch). Ignored for local folders.
    """

    buffered = True

    def __init__(self, location: ShardLocation | str | Path, manifest: dict[str, Any], decoder: str,
                 cache_dir: str | Path | None = None):
        self.location = location if isinstance(location, ShardLocation) else ShardLocation(location)
        self.entries = list(manifest["shards"])
        self.names = [shard["name"] for shard in self.entries]
        self.unit_sizes = [int(shard["samples"]) for shard in self.entries]
        self.size = int(manifest["settings"]["size"])
        self.decoder = decoder
        self.cache = ShardCache(cache_dir, self.location) if cache_dir and not self.location.is_local else None

    @property
    def directory(self) -> Path:  # kept for callers that read local shard folders
        return self.location.path

    def preload(self) -> None:
        preload_decoder(self.decoder)

    def read(self, pieces: Iterable[Piece]) -> Iterator[EncodedSample]:
        for piece in pieces:
            entry = self.entries[piece.unit]
            url = self.location.url(entry["name"])
            fix = f"run `wam-pipe shard verify {self.location.spec}`"
            yielded = 0
            try:
                if self.cache is not None:
                    stream = open(self.cache.path(entry), "rb", buffering=1 << 16)
                else:
                    stream = self.location.open(entry["name"], entry["bytes"])
                with stream:
                    for sample in read_samples_from(stream, entry["name"], piece.start, piece.stop):
                        yielded += 1
                        yield sample
            except (OSError, ShardFormatError) as err:
                raise UserError(f"{url}: cannot read shard ({err}); {fix}") from None
            # Every rank plans its batch count from the manifest: a shard holding fewer samples than recorded would
            # silently shorten this rank's epoch and leave the other ranks waiting in a collective.
            if yielded != piece.stop - piece.start:
                recorded = self.unit_sizes[piece.unit]
                raise UserError(f"{url}: the manifest records {recorded} samples but the shard ends after "
                                f"{piece.start + yielded}; {fix}")

    def decode(self, item: EncodedSample, selector: MaskSelector, rng: np.random.Generator) -> dict[str, Any]:
        return decode_stored(item, selector, rng, self.size, self.decoder)


def open_shards(spec: str | Path | ShardLocation, io: IOSettings | None = None) -> tuple[ShardLocation, dict[str, Any]]:
    """Read a shard location's manifest and check that every shard is there with its recorded size.

    Raises:
        UserError: unknown URL scheme, no manifest, an unreachable or forbidden URL, a missing or resized shard.
    """
    location = spec if isinstance(spec, ShardLocation) else ShardLocation(spec, io)
    manifest = read_manifest_at(location)
    if manifest.get("part"):
        raise UserError(f"{location}: holds a part manifest only; join the parts with `wam-pipe shard merge`")
    sizes = location.sizes([shard["name"] for shard in manifest["shards"]])
    for shard in manifest["shards"] if sizes or location.is_local else []:
        url, size = location.url(shard["name"]), sizes.get(shard["name"])
        if size is None:
            raise UserError(f"{url}: shard listed in the manifest is missing; rebuild (or re-upload) with "
                            "`wam-pipe shard build`")
        if size != shard["bytes"]:
            raise UserError(f"{url}: {size} bytes, the manifest says {shard['bytes']}; run `wam-pipe shard verify "
                            f"{location}`")
    return location, manifest
