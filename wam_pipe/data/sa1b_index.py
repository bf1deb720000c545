"""List SA-1B tar files (headers only) into the index a shard build plans from, refusing bad inputs up front.

SA-1B ships as tar files of pairs `sa_N.jpg` + `sa_N.json`. Before anything is written, every tar is listed with
`tarfile` in seekable mode: one 512-byte header read per member and a seek over its data (nothing is extracted or
decoded). The listing decides the shard plan and catches the inputs no build can use, each a one-line `UserError`:
a tar that is missing, not a tar, or truncated (a member's data runs past the end of the file); an image without
its JSON or a JSON without its image; a member name without an image id (`<stem ending in digits>.jpg|.json`); the
same image id twice (in one tar or across tars, naming both).

Order: tars sorted by path, pairs in the order their second member appears in the tar (the order a stream reader
completes them), so the plan is the order the build's stream pass meets them. Sample keys are the zero-padded ids.
The source fingerprint is `(tar file name, byte size)` per tar, in that order (not the folder: a copy of the tars
elsewhere is the same source).
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wam_pipe.core.errors import UserError
from wam_pipe.data.coco_index import sample_key

IMAGE_SUFFIXES = (".jpg", ".jpeg")
JSON_SUFFIX = ".json"
SA1B_CATEGORIES = [{"id": 1, "name": "object", "supercategory": "sa1b"}]  # SA-1B masks have no class
_ID = re.compile(r"(\d+)$")


@dataclass(frozen=True)
class TarImageRecord:
    """One image of an SA-1B tar: its id, tar (by position in the sorted list) and member names."""

    id: int
    file_name: str  # "<tar file name>/<image member>", for messages and the manifest's `skipped`
    group: int  # the tar's position: shards never span two tars
    image_member: str
    json_member: str

    @property
    def key(self) -> str:
        return sample_key(self.id)


@dataclass
class TarIndex:
    """What a build needs from a list of SA-1B tars (the tar analogue of `CocoIndex`).

    Attributes:
        tars: the tar files, sorted by path.
        images: every image, in plan order (tar order, then member order).
        sizes: each tar's byte size (the source fingerprint).
        ignored_members: members that are neither images nor JSON (counted, not used).
    """

    tars: list[Path]
    images: list[TarImageRecord]
    sizes: list[int]
    ignored_members: int = 0
    categories: list[dict[str, Any]] = field(default_factory=lambda: [dict(c) for c in SA1B_CATEGORIES])
    annotation_count: int = 0  # unknown until the JSONs are read; the manifest's totals count instances
    unknown_image_ids: list[int] = field(default_factory=list)
    unknown_annotation_count: int = 0

    def fingerprint(self) -> str:
        return tars_fingerprint(self.tars, self.sizes)


def tars_fingerprint(tars: list[Path], sizes: list[int]) -> str:
    """sha256 over `(tar file name, byte size)` of each tar, in order."""
    digest = hashlib.sha256()
    for path, size in zip(tars, sizes):
        digest.update(f"{path.name!r}\t{size}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def resolve_tars(specs: list[str | Path]) -> list[Path]:
    """Tar paths from files, folders (their `*.tar`) and glob patterns, sorted by path, each once.

    Raises:
        UserError: a spec matches nothing, or names something that is not a `.tar` file.
    """
    found: set[Path] = set()
    for spec in map(str, specs):
        path = Path(spec)
        if path.is_dir():
            matches = sorted(path.glob("*.tar"))
            if not matches:
                raise UserError(f"{spec}: folder holds no .tar files; pass SA-1B tar files, folders or globs")
        elif path.is_file():
            matches = [path]
        else:
            matches = [Path(p) for p in sorted(glob.glob(spec)) if Path(p).is_file()]
            if not matches:
                raise UserError(f"{spec}: no such tar file (and no file matches it as a glob); pass SA-1B tar files")
        for match in matches:
            if not match.name.endswith(".tar"):
                raise UserError(f"{match}: not a .tar file; pass the SA-1B tar files (plain, uncompressed tar)")
            found.add(Path(os.path.abspath(match)))
    if not found:
        raise UserError("shard build --sa1b: no tar files given")
    return sorted(found)


def image_id_of(member: str) -> int | None:
    """The id in `sa_223750.jpg` / `sa_223750.json` (the digits ending the stem), or None."""
    match = _ID.search(Path(member).stem)
    return int(match.group(1)) if match else None


def _list_tar(path: Path, group: int) -> tuple[list[TarImageRecord], int, int]:
    """(records in completion order, ignored members, file size) of one tar, from its headers."""
    try:
        size = path.stat().st_size
        archive = tarfile.open(path, mode="r:")
    except (OSError, tarfile.TarError) as err:
        raise UserError(f"{path}: not a readable tar file ({err}); pass the SA-1B tar files as downloaded") from None
    pending: dict[int, tuple[str | None, str | None]] = {}
    records: list[TarImageRecord] = []
    ignored = 0
    try:
        with archive:
            for member in archive:
                if member.offset_data + member.size > size:
                    raise UserError(f"{path}: truncated: member {member.name} needs {member.size} bytes at offset "
                                    f"{member.offset_data} but the file ends at {size}; re-download this tar")
                if not member.isfile():
                    continue
                suffix = Path(member.name).suffix.lower()
                is_image, is_json = suffix in IMAGE_SUFFIXES, suffix == JSON_SUFFIX
                if not (is_image or is_json):
                    ignored += 1
                    continue
                image_id = image_id_of(member.name)
                if image_id is None:
                    raise UserError(f"{path}: member {member.name}: no image id in its name (expected sa_N.jpg / "
                                    "sa_N.json); pass SA-1B tars")
                image, meta = pending.pop(image_id, (None, None))
                if (image if is_image else meta) is not None:
                    raise UserError(f"{path}: member {member.name}: image id {image_id} appears twice in this tar; "
                                    "re-download this tar")
                image, meta = (member.name, meta) if is_image else (image, member.name)
                if image is None or meta is None:
                    pending[image_id] = (image, meta)
                else:
                    records.append(TarImageRecord(image_id, f"{path.name}/{image}", group, image, meta))
            rest = size - archive.offset  # after the last member: the end-of-archive blocks (>= 512 zero bytes)
    except tarfile.TarError as err:
        raise UserError(f"{path}: damaged tar ({err}); re-download this tar") from None
    if rest < 512:
        where = "inside a member header" if rest else "without the end-of-archive blocks"
        raise UserError(f"{path}: truncated: the file ends {where} at byte {size}; re-download this tar")
    if pending:
        image_id, (image, meta) = next(iter(pending.items()))
        lone, missing = (image, "JSON") if image is not None else (meta, "image")
        more = f" (and {len(pending) - 1} more unpaired members)" if len(pending) > 1 else ""
        raise UserError(f"{path}: member {lone} has no matching {missing} in this tar{more}; SA-1B tars hold "
                        "sa_N.jpg + sa_N.json pairs: re-download this tar")
    return records, ignored, size


def list_sa1b_tars(specs: list[str | Path]) -> TarIndex:
    """List every tar's headers into a `TarIndex` (see the module docstring for what is refused)."""
    tars = resolve_tars(specs)
    images: list[TarImageRecord] = []
    sizes: list[int] = []
    ignored = 0
    seen: dict[int, Path] = {}
    for group, path in enumerate(tars):
        records, skipped_members, size = _list_tar(path, group)
        for record in records:
            if record.id in seen:
                raise UserError(f"{path}: image id {record.id} ({record.image_member}) is also in {seen[record.id]}; "
                                "each SA-1B image must be in one tar: drop the duplicate tar")
            seen[record.id] = path
        images.extend(records)
        sizes.append(size)
        ignored += skipped_members
    return TarIndex(tars, images, sizes, ignored)
