"""The `load` stage: batches of uint8 images and instance masks, split exactly across ranks and workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Optional

from wam_pipe.core.errors import UserError
from wam_pipe.core.context import RunContext
from wam_pipe.core.signature import instance_for_check
from wam_pipe.data.location import IOSettings, is_url, scheme_problem
from wam_pipe.data.coco_index import load_coco_index
from wam_pipe.data.readers.decode import Collate, DECODERS
from wam_pipe.data.readers.mask_select import MASK_MODES, MaskSelector
from wam_pipe.data.readers.mix import MixStream
from wam_pipe.data.readers.per_file import PerFileSource
from wam_pipe.data.readers.shard_source import ShardSource, open_shards
from wam_pipe.data.readers.stream import EpochStream, iterate, make_loader
from wam_pipe.data.shards.manifest import MANIFEST_NAME, read_manifest


class Load:
    """Stream batches `{"images": (B, 3, S, S) uint8, "masks": (B, K, S, S) uint8, "keys": [str]}` for each epoch.

    Exactly one source: `shards` (a directory made by `shard build`), `images` + `annotations` (the per-file
    COCO loader: decode + rasterise at load time, no shards needed, same output), or `mix` (several shard sets with
    weights, for training):
    ```yaml
    mix:
      - {shards: shards/coco, weight: 0.3}
      - {shards: shards/sa1b, weight: 0.7, name: sa1b}   # name: the key prefix and log label (default: folder)
    epoch_batches: 1000
    ```
    With `mix`, each batch's samples are drawn from the sets by weight with a generator seeded from (seed, epoch,
    rank, worker); an epoch is `epoch_batches` batches on every rank; each set is read as with `resampled: true`
    (samples may repeat or be missed within an epoch); keys become `<name>/<key>`; the realized mix of each epoch
    is logged. All sets must hold samples of `size`.

    Each epoch the shard order is reshuffled (seeded by run seed + epoch) and cut at sample granularity into one
    contiguous span per rank and one block of whole batches per worker: with `drop_last` every rank gets the same
    number of batches and every sample is read at most once (all but fewer than world x (batch_size + 1) per epoch);
    with `drop_last: false` every sample is read exactly once across ranks (evaluation). Sample randomness (shuffle
    buffer, instance subsets) is seeded from (seed, epoch, rank, worker).

    Args:
        shards: where the shards and their `manifest.json` are: a local folder, `file://`, `s3://bucket/prefix`,
            `gs://...`, `http(s)://...` or `pipe:CMD` with `{name}` in CMD (see docs/data.md, "Shards from URLs").
            Default None.
        images: folder of COCO images (per-file source). Default None.
        annotations: COCO instances JSON (per-file source). Default None.
        size: sample side in pixels; must equal the shards' size. Default 256.
        batch_size: samples per batch, per rank. Default 16.
        workers: DataLoader worker processes per rank; 0 runs in-process. Default 8.
        prefetch_factor: batches prefetched per worker. Default 4.
        persistent_workers: keep workers alive between epochs. Default True.
        pin_memory: pin batches for faster host-to-GPU copies (only used when the device is CUDA). Default True.
        shuffle: reshuffle shard order each epoch and use the shuffle buffer. Default True.
        shuffle_buffer: encoded samples held per worker for shuffling (~30 KB each). Default 1000.
        mask_mode: "union" (K = 1, the union of a random subset of instances with probability `random_subset`, else
            of all) or "instances" (K = `max_masks` separate instance masks, zero-padded). Default "union".
        max_masks: K for `mask_mode: instances`. Default 4.
        random_subset: probability of a random instance subset in union mode (0 for evaluation). Default 0.5.
        instance_subset: in `instances` mode, with probability `random_subset` take the first `max_masks` of a
            random subset of the instances in random order, else the first `max_masks` (the reference's
            multi-watermark loader). Default False (always the first `max_masks`).
        resampled: draw shards with replacement, endlessly (streaming); an epoch is then a fixed number of batches
            and samples may repeat or be missed. Default False.
        drop_last: drop incomplete batches so that every rank has the same batch count (training). Default True.
        max_samples: use only the first N samples of the epoch's order (e.g. evaluation subsets). Default None.
        decoder: "torchvision" (faster: the tensor codec of `core.codecs`, TorchCodec when installed, else
            torchvision.io) or "pil". Default "torchvision".
        channels_last: deliver `images` in channels-last memory layout (same shape (B, 3, S, S); saves a strided
            copy per image in the workers; `.contiguous()` gives NCHW memory). Default True.
        min_shards_per_worker: exact epochs need at least this many shards per (rank x worker); fewer fails at
            setup saying how many are needed. Default 1.
        batch_ring: workers hand batches to the main process through reusable shared-memory slots
            (`prefetch_factor + 2` per worker) instead of fresh shared memory per batch; measured 1.3-1.6x less loader
            CPU per image (benchmarks/RESULTS.md). Off: the plain DataLoader hand-over. Default True.
        shard_slice: use only `shards[start:stop]` of the manifest, as a Python slice `[start, stop]` (null = open
            end): e.g. `[0, -1]` trains on all shards but the last and `[-1, null]` evaluates on the held-out last
            one. Default None (all shards).
        cache_dir: for remote `shards`: keep each downloaded shard here (checked against the manifest's size and
            sha256, filled atomically) and reuse it in later epochs and runs. Default None (stream every epoch).
        io_timeout: seconds a remote connect or read may wait before it counts as failed. Default 60.
        io_retries: further tries of a failed remote open or read (reopened and read forward). Default 3.
        storage_options: fsspec file-system options for remote `shards`, e.g. `{endpoint_url: http://host:9000}`
            for an S3-compatible store; never credentials (environment or ~/.aws). Default None.
        drop_unannotated: leave out the images that have no annotation at all (the reference drops them); only
            with the per-file source (`images` + `annotations`); for shards, build them with
            `shard build --drop-unannotated`. Default False (kept: they
            still carry generated box / brush / full-image watermarks, and give a `segm` batch its unwatermarked
            images).
        mix: list of `{shards, weight, name}` shard sets to mix (instead of `shards`); each `shards` is a folder or
            a URL (read with cache_dir / io_timeout / io_retries / storage_options above); weights >= 0, not all 0.
            Default None.
        epoch_batches: batches per rank per epoch with `mix` (required there; unused otherwise). Default None.
    """

    def __init__(self, shards: str | None = None, images: str | None = None, annotations: str | None = None,
                 size: int = 256, batch_size: int = 16, workers: int = 8, prefetch_factor: int = 4,
                 persistent_workers: bool = True, pin_memory: bool = True, shuffle: bool = True,
                 shuffle_buffer: int = 1000, mask_mode: str = "union", max_masks: int = 4,
                 random_subset: float = 0.5, resampled: bool = False, drop_last: bool = True,
                 max_samples: int | None = None, decoder: str = "torchvision", channels_last: bool = True,
                 min_shards_per_worker: int = 1, shard_slice: Optional[list[Optional[int]]] = None,
                 batch_ring: bool = True, cache_dir: str | None = None, io_timeout: float = 60.0,
                 io_retries: int = 3, storage_options: Optional[dict[str, Any]] = None,
                 mix: Optional[list[dict]] = None, epoch_batches: Optional[int] = None,
                 drop_unannotated: bool = False, instance_subset: bool = False):
        self.shards, self.images, self.annotations = shards, images, annotations
        self.size, self.batch_size, self.workers = size, batch_size, workers
        self.prefetch_factor, self.persistent_workers, self.pin_memory = prefetch_factor, persistent_workers, pin_memory
        self.shuffle, self.shuffle_buffer = shuffle, shuffle_buffer
        self.mask_mode, self.max_masks, self.random_subset = mask_mode, max_masks, random_subset
        self.resampled, self.drop_last, self.max_samples = resampled, drop_last, max_samples
        self.decoder, self.channels_last, self.min_shards_per_worker = decoder, channels_last, min_shards_per_worker
        self.shard_slice, self.batch_ring = shard_slice, batch_ring
        self.cache_dir, self.io_timeout, self.io_retries = cache_dir, io_timeout, io_retries
        self.storage_options = dict(storage_options or {})
        self.drop_unannotated, self.instance_subset = drop_unannotated, instance_subset
        self.mix, self.epoch_batches = mix, epoch_batches
        self._stream: Any = None
        self._loader: Any = None
        self._log: Any = print

    @classmethod
    def check_config(cls, node: dict) -> list[tuple[str, str]]:
        """`wam-pipe validate`: the value ranges that `setup` checks, all at once, as (key, message)."""
        load = instance_for_check(cls, node)  # None on wrong types or names: the signature check reports them
        return load._value_problems() if load is not None else []

    def _value_problems(self) -> list[tuple[str, str]]:
        per_file = self.images is not None or self.annotations is not None
        given = (self.shards is not None) + per_file + (self.mix is not None)
        one_source = given == 1 and not (per_file and (self.images is None or self.annotations is None))
        checks = [
            (not one_source, "", "give exactly one source: `shards`, `mix`, or both `images` and `annotations`"),
            (self.batch_size < 1, "batch_size", f"must be >= 1, got {self.batch_size}"),
            (self.workers < 0, "workers", f"must be >= 0, got {self.workers}"),
            (self.prefetch_factor < 1, "prefetch_factor", f"must be >= 1, got {self.prefetch_factor}"),
            (self.shuffle_buffer < 0, "shuffle_buffer", f"must be >= 0, got {self.shuffle_buffer}"),
            (self.mask_mode not in MASK_MODES, "mask_mode", f"must be one of {MASK_MODES}, got {self.mask_mode!r}"),
            (self.max_masks < 1, "max_masks", f"must be >= 1, got {self.max_masks}"),
            (not 0.0 <= self.random_subset <= 1.0, "random_subset", f"must be in [0, 1], got {self.random_subset}"),
            (self.max_samples is not None and self.max_samples < 0, "max_samples",
             f"must be >= 0, got {self.max_samples}"),
            (self.decoder not in DECODERS, "decoder", f"must be one of {DECODERS}, got {self.decoder!r}"),
            (self.size < 8, "size", f"must be >= 8, got {self.size}"),
            (self.drop_unannotated and not per_file, "drop_unannotated",
             "needs the per-file source (`images` + `annotations`); for shards, build them with "
             "`wam-pipe shard build --drop-unannotated` (or `drop_unannotated: true` in the shard-build stage)"),
        ]
        if self.shards is not None:
            problem = scheme_problem(str(self.shards))
            checks.append((problem is not None, "shards", problem or ""))
        problems = [(key, message) for bad, key, message in checks if bad] + self._io_settings().problems()
        return problems + (mix_problems(self) if self.mix is not None else [])

    def _io_settings(self) -> IOSettings:
        return IOSettings(timeout=self.io_timeout, retries=self.io_retries, storage_options=self.storage_options)

    def _check_values(self) -> None:
        problems = self._value_problems()
        if problems:
            raise UserError(*(f"load.{key}: {message}" if key else f"load: {message}" for key, message in problems))

    def setup(self, ctx: RunContext) -> None:
        """Read the manifest (or parse the JSON once), check shard counts, and build this rank's loader."""
        self._check_values()
        self._log = ctx.log
        selector = MaskSelector(self.mask_mode, self.max_masks, self.random_subset, self.instance_subset)
        if self.mix is not None:
            self._setup_mix(ctx, selector)
            return
        source = self._shard_source(ctx) if self.shards is not None else self._per_file_source()
        self._stream = EpochStream(
            source, selector, Collate(self.channels_last), batch_size=self.batch_size, seed=ctx.seed, rank=ctx.rank,
            world_size=ctx.world_size, drop_last=self.drop_last, shuffle=self.shuffle,
            shuffle_buffer=self.shuffle_buffer, resampled=self.resampled, max_samples=self.max_samples,
        )
        if self.drop_last and self._stream.batches_per_epoch() == 0:
            raise UserError(
                f"load: {self._stream.total} samples cannot fill one batch of {self.batch_size} on each of "
                f"{ctx.world_size} ranks; lower load.batch_size or use more data"
            )
        pin = bool(self.pin_memory) and ctx.device.type == "cuda"
        self._loader = make_loader(self._stream, self.workers, self.prefetch_factor, self.persistent_workers, pin,
                                   self.batch_ring)

    def _setup_mix(self, ctx: RunContext, selector: Any) -> None:
        sources = []
        for position, entry in enumerate(self.mix or []):
            directory, manifest = open_shards(entry["shards"], self._io_settings())
            stored = manifest["settings"]["size"]
            if stored != self.size:
                raise UserError(f"load.mix[{position}].shards: {directory} holds {stored}-pixel samples but load.size "
                                f"is {self.size}; every set of a mix must be built at one size")
            sources.append(ShardSource(directory, manifest, self.decoder, self.cache_dir))
        self._stream = MixStream(
            sources, mix_names(self.mix or []), [float(e["weight"]) for e in self.mix or []], selector,
            Collate(self.channels_last), batch_size=self.batch_size, seed=ctx.seed, rank=ctx.rank,
            world_size=ctx.world_size, shuffle_buffer=self.shuffle_buffer, epoch_batches=int(self.epoch_batches or 0),
        )
        pin = bool(self.pin_memory) and ctx.device.type == "cuda"
        self._loader = make_loader(self._stream, self.workers, self.prefetch_factor, self.persistent_workers, pin,
                                   self.batch_ring)

    def realized_mix(self, epoch: int) -> list[tuple[str, int]]:
        """(set name, samples) of a mix over `epoch`, all ranks together (from the seeded draws; nothing is read)."""
        stream = self._require_setup()
        counts = stream.realized_counts(epoch, max(self.workers, 1))
        return list(zip(mix_names(self.mix or []), counts))

    def _shard_source(self, ctx: RunContext) -> Any:
        directory, manifest = open_shards(self.shards, self._io_settings())
        if self.shard_slice is not None:
            manifest = _slice_shards(manifest, self.shard_slice, directory)
        stored = manifest["settings"]["size"]
        if stored != self.size:
            raise UserError(f"load.size: {self.size}, but {directory} holds {stored}-pixel samples; set size: {stored} "
                            "or rebuild the shards")
        self._check_shard_count(len(manifest["shards"]), manifest["totals"]["samples"], ctx.world_size, directory)
        return ShardSource(directory, manifest, self.decoder, self.cache_dir)

    def _check_shard_count(self, shards: int, samples: int, world_size: int, directory: Path) -> None:
        consumers = world_size * max(self.workers, 1)
        needed = consumers * self.min_shards_per_worker
        if self.resampled or shards >= needed:
            return
        per_shard = max(1, samples // needed)
        fewer_workers = max(shards // (world_size * self.min_shards_per_worker), 0)
        raise UserError(
            f"{directory}: {shards} shards for {world_size} ranks x {max(self.workers, 1)} workers; at least {needed} "
            f"are needed; rebuild with --samples-per-shard {per_shard} (or lower), or set load.workers: "
            f"{fewer_workers}" + (" (0 = in-process)" if fewer_workers == 0 else "")
        )

    def _per_file_source(self) -> Any:
        images = Path(self.images)
        if not images.is_dir():
            raise UserError(f"{images}: image folder not found; set load.images to the folder of the JSON's file_names")
        index = load_coco_index(self.annotations)
        records = index.images
        if self.drop_unannotated:
            records = [r for r in records if r.annotations_json != b"[]"]
            if not records:
                raise UserError(f"{self.annotations}: no image has an annotation; set load.drop_unannotated: false")
        return PerFileSource(images, records, self.size, self.decoder)

    def _require_setup(self) -> Any:
        if self._stream is None:
            raise RuntimeError("Load.setup(ctx) must be called before using the loader")
        return self._stream

    @property
    def batches_per_epoch(self) -> int:
        """Batches this rank yields per epoch (identical on every rank when `drop_last`)."""
        return self._require_setup().batches_per_epoch()

    @property
    def num_samples(self) -> int:
        """Samples available per epoch across all ranks (after `max_samples`)."""
        return self._require_setup().total

    def epoch(self, epoch: int) -> Iterator[dict]:
        """This rank's batches for `epoch` (exactly `batches_per_epoch` of them)."""
        stream = self._require_setup()
        stream.set_epoch(epoch)
        if self.mix is not None:
            mix = self.realized_mix(epoch)
            total = max(sum(n for _, n in mix), 1)
            self._log(f"load: epoch {epoch} mix over {self.epoch_batches} batches x {stream.world_size} ranks: "
                      + ", ".join(f"{name} {n / total:.3f} ({n} samples)" for name, n in mix))
        return iterate(self._loader)


def mix_names(mix: list[dict]) -> list[str]:
    """Each set's name: its `name`, else its folder's name; a repeated name gets its position appended."""
    names = [str(e.get("name") or Path(str(e.get("shards", ""))).name or f"set{i}") for i, e in enumerate(mix)]
    return [f"{n}{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def mix_problems(load: Load) -> list[tuple[str, str]]:
    """The `mix` checks `validate` runs: entries, weights, `epoch_batches`, options a mix cannot honour."""
    mix = load.mix
    if not isinstance(mix, list) or not mix:
        return [("mix", "must be a non-empty list of {shards, weight} entries")]
    problems: list[tuple[str, str]] = []
    weights = []
    for i, entry in enumerate(mix):
        if not isinstance(entry, dict) or not isinstance(entry.get("shards"), str):
            problems.append((f"mix[{i}]", f"expected {{shards: DIR, weight: NUMBER}}, got {entry!r}"))
            continue
        scheme = scheme_problem(entry["shards"])
        if scheme is not None:
            problems.append((f"mix[{i}].shards", scheme))
        unknown = sorted(set(entry) - {"shards", "weight", "name"})
        if unknown:
            problems.append((f"mix[{i}]", f"unknown keys {unknown}; an entry has shards, weight and (optional) name"))
        weight = entry.get("weight")
        if type(weight) not in (int, float) or weight < 0:
            problems.append((f"mix[{i}].weight", f"must be a number >= 0, got {weight!r}"))
        else:
            weights.append(weight)
    if not problems and sum(weights) <= 0:
        problems.append(("mix", "all weights are 0; give at least one set a positive weight"))
    if not problems:
        problems.extend(_mix_size_problems(mix, load.size))
    if load.epoch_batches is None or load.epoch_batches < 1:
        problems.append(("epoch_batches", f"a mix needs epoch_batches >= 1 (batches per rank per epoch), got "
                                          f"{load.epoch_batches}"))
    for bad, key in ((not load.drop_last, "drop_last"), (load.max_samples is not None, "max_samples"),
                     (load.shard_slice is not None, "shard_slice")):
        if bad:
            problems.append((key, "not supported with mix (a mix is for training: fixed batches per epoch)"))
    return problems


def _mix_size_problems(mix: list[dict], size: int) -> list[tuple[str, str]]:
    """Sets already built at another size than `size` (sets not built yet are checked at setup)."""
    problems = []
    for i, entry in enumerate(mix):
        if is_url(entry["shards"]):  # remote sets are checked at setup (no network during validate)
            continue
        path = Path(entry["shards"]) / MANIFEST_NAME
        if not path.is_file():
            continue
        try:
            stored = read_manifest(path)["settings"]["size"]
        except UserError as err:
            problems.append((f"mix[{i}].shards", str(err)))
            continue
        if stored != size:
            problems.append((f"mix[{i}].shards", f"{entry['shards']} holds {stored}-pixel samples but size is {size}; "
                                                 "every set of a mix must be built at one size"))
    return problems


def _slice_shards(manifest: dict[str, Any], bounds: list[Optional[int]], directory: Path) -> dict[str, Any]:
    """The manifest restricted to `shards[start:stop]` (a hold-out split by whole shards)."""
    if len(bounds) != 2:
        raise UserError(f"load.shard_slice: expected [start, stop], got {bounds}")
    shards = manifest["shards"][slice(*bounds)]
    if not shards:
        raise UserError(f"load.shard_slice: {bounds} selects none of the {len(manifest['shards'])} shards in "
                        f"{directory}")
    totals = {**manifest["totals"], "samples": sum(int(s["samples"]) for s in shards)}
    return {**manifest, "shards": shards, "totals": totals}
