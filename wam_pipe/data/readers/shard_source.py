"""The shard source of the load stage: units are the manifest's shards, items are encoded samples.

`open_shards(directory)` reads and checks the manifest (all shard files present with their recorded sizes);
`ShardSource` reads pieces of shards (`tar_io.read_samples`) and decodes them (`decode.decode_stored`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from wam_pipe.data.readers.decode import decode_stored
from wam_pipe.data.shards.manifest import read_manifest
from wam_pipe.data.readers.mask_select import MaskSelector
from wam_pipe.data.readers.epoch_plan import Piece
from wam_pipe.data.shards.tar_io import EncodedSample, ShardFormatError, read_samples
from wam_pipe.core.errors import UserError
from wam_pipe.data.readers.decode import preload_decoder


class ShardSource:
    """Shards of one manifest as a loader `Source`.

    Args:
        directory: the shard directory (holding `manifest.json`).
        manifest: the parsed manifest.
        decoder: "torchvision" or "pil" (image decoder).
    """

    buffered = True

    def __init__(self, directory: Path, manifest: dict[str, Any], decoder: str):
        self.directory = Path(directory)
        self.names = [shard["name"] for shard in manifest["shards"]]
        self.unit_sizes = [int(shard["samples"]) for shard in manifest["shards"]]
        self.size = int(manifest["settings"]["size"])
        self.decoder = decoder

    def preload(self) -> None:
        preload_decoder(self.decoder)

    def read(self, pieces: Iterable[Piece]) -> Iterator[EncodedSample]:
        for piece in pieces:
            path = self.directory / self.names[piece.unit]
            fix = f"run `wam-pipe shard verify {self.directory}`"
            yielded = 0
            try:
                for sample in read_samples(path, piece.start, piece.stop):
                    yielded += 1
                    yield sample
            except (OSError, ShardFormatError) as err:
                raise UserError(f"{path}: cannot read shard ({err}); {fix}") from None
            # Every rank plans its batch count from the manifest: a shard holding fewer samples than recorded would
            # silently shorten this rank's epoch and leave the other ranks waiting in a collective.
            if yielded != piece.stop - piece.start:
                recorded = self.unit_sizes[piece.unit]
                raise UserError(f"{path}: the manifest records {recorded} samples but the shard ends after "
                                f"{piece.start + yielded}; {fix}")

    def decode(self, item: EncodedSample, selector: MaskSelector, rng: np.random.Generator) -> dict[str, Any]:
        return decode_stored(item, selector, rng, self.size, self.decoder)


def open_shards(directory: str | Path) -> tuple[Path, dict[str, Any]]:
    """Read a shard directory's manifest and check that every shard file is there with its recorded size.

    Raises:
        UserError: no manifest, or a missing or resized shard.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest.get("part"):
        raise UserError(f"{directory}: holds a part manifest only; join the parts with `wam-pipe shard merge`")
    for shard in manifest["shards"]:
        path = directory / shard["name"]
        if not path.is_file():
            raise UserError(f"{path}: shard listed in the manifest is missing; rebuild with `wam-pipe shard build`")
        if path.stat().st_size != shard["bytes"]:
            raise UserError(f"{path}: size differs from the manifest's; run `wam-pipe shard verify {directory}`")
    return directory, manifest
