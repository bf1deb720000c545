"""`wam-pipe shard build|verify|inspect|merge`: COCO -> WebDataset shards, and tools to check and join them.

Exit codes: 0 success (a build that was already up to date included), 1 too many skipped images (in this build or
in the published one a rerun finds) / a bad shard / nothing to draw, 2 a user error (bad arguments, missing or
malformed inputs, an output folder holding another build or one made from other images).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wam_pipe.core.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("shard", help="build, verify, inspect or merge WebDataset shards", description=__doc__)
    which = parser.add_subparsers(dest="shard_command", metavar="ACTION")
    which.required = True
    _add_build(which)
    verify = which.add_parser(
        "verify", help="recompute hashes, decode every sample, check counts",
        description="Check a shard folder against its manifest.json: recompute every shard's SHA-256, decode every "
        "sample (image and masks), and compare the per-shard and total sample counts with the manifest (and keys for duplicates). "
        "Prints OK with the totals, or one line per problem (exit 1). Shards are checked in parallel (--workers); "
        "progress (shards/s, ETA) goes to stderr. Example: wam-pipe shard verify data/shards/train")
    verify.add_argument("directory", help="shard folder (holding manifest.json)")
    verify.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    verify.set_defaults(func=_verify)
    inspect = which.add_parser(
        "inspect", help="counts, sizes, category histogram, and a picture of samples",
        description="Summarise a shard folder from its manifest and samples: shard and sample counts, bytes, the "
        "stored size, instances per image and the category histogram; with --out, also draw a grid of --samples "
        "samples with their masks overlaid. Reads only; example: wam-pipe shard inspect data/shards/train --out "
        "samples.png")
    inspect.add_argument("directory", help="shard folder (holding manifest.json)")
    inspect.add_argument("--out", default=None,
                         help="write a grid of samples with masks overlaid to this .png (or .jpg) file")
    inspect.add_argument("--samples", type=int, default=16, help="samples in the picture, >= 1 (default 16)")
    inspect.set_defaults(func=_inspect)
    merge = which.add_parser(
        "merge", help="join the part manifests of a --num-parts build",
        description="Join the parts of a build split with `shard build --num-parts P --part i` (one per machine or "
        "job) into one shard folder with one manifest.json: the parts must come from the same inputs and settings "
        "and together cover every part exactly once. Shards outside --out are hard-linked (or copied) into it; the "
        "manifest is written last. Example: wam-pipe shard merge parts/p0 parts/p1 --out data/shards/train")
    merge.add_argument("inputs", nargs="+", help="shard folders or part manifest files")
    merge.add_argument("--out", required=True, help="output folder (shards elsewhere are linked or copied here)")
    merge.set_defaults(func=_merge)


def _add_build(which: argparse._SubParsersAction) -> None:
    build = which.add_parser("build", help="pack images + instance masks into shards (incremental, crash-safe)",
                             description="Pack images + instance masks into WebDataset shards, from COCO (--images + "
                             "--annotations), a folder without annotations (--images alone: no instances) or SA-1B "
                             "tars (--sa1b). Rerunning with the same inputs and settings is a no-op; an interrupted "
                             "build resumes; missing or damaged shards of a published build are rebuilt alone.")
    build.add_argument("--images", default=None,
                       help="folder of the images the JSON lists; without --annotations, every image under it "
                       "(recursively) is packed with no instances")
    build.add_argument("--annotations", default=None, help="COCO instances JSON")
    build.add_argument("--sa1b", nargs="+", default=None, metavar="TAR_OR_DIR_OR_GLOB",
                       help="SA-1B tar files, folders of them, or globs (read as streams, never extracted)")
    build.add_argument("--max-masks", type=int, default=None,
                       help="SA-1B: keep at most N masks per image, the first by --mask-order (default: all)")
    build.add_argument("--mask-order", choices=["area", "predicted_iou", "stability"], default="area",
                       help="SA-1B: which masks --max-masks keeps: largest area, predicted IoU or stability score "
                       "first (default area)")
    build.add_argument("--drop-unannotated", action="store_true",
                       help="COCO: leave out the images the JSON gives no annotation (as the reference's loader; "
                       "default: keep them, with an empty instance list)")
    build.add_argument("--out", required=True, help="output folder for shard-*.tar and manifest.json, or an s3:// / "
                       "gs:// URL (built in --staging, each finished shard uploaded, the manifest last)")
    build.add_argument("--staging", default=None, help="with a URL --out: the local build folder (default "
                       "~/.cache/wam-pipe/staging/<hash of the URL>; keep it to resume an interrupted upload)")
    build.add_argument("--size", type=int, default=256, help="stored side in pixels (default 256)")
    build.add_argument("--samples-per-shard", type=int, default=512, help="samples per shard (default 512)")
    build.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    build.add_argument("--image-format", choices=["jpeg", "png"], default="jpeg", help="stored image format")
    build.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    build.add_argument("--overwrite", action="store_true",
                       help="rebuild from scratch, replacing whatever build the output holds (even an up-to-date one)")
    build.add_argument("--max-skipped-fraction", type=float, default=0.01,
                       help="fail (exit 1, publish nothing) above this fraction of skipped images (default 0.01)")
    build.add_argument("--num-parts", type=int, default=1, help="split the build into P disjoint parts")
    build.add_argument("--part", type=int, default=0, help="which part to build (0..P-1)")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    from wam_pipe.data.shards.build import build_shards
    from wam_pipe.data.shards.build_state import BuildConfig
    from wam_pipe.data.shards.manifest_summary import summary_lines
    from wam_pipe.data.location import ShardLocation, is_url
    from wam_pipe.data.shards.upload import ShardUploader, default_staging, publish

    if args.sa1b and (args.images or args.annotations):
        raise UserError("shard build: give either --sa1b (tar files) or --images (+ --annotations), not both")
    if not args.sa1b and not args.images:
        raise UserError("shard build: give --images (with or without --annotations) or --sa1b")
    location = ShardLocation(args.out)  # refuses an unknown scheme
    remote = is_url(args.out)
    if remote and location.scheme not in ("s3", "gs", "gcs"):
        raise UserError(f"{args.out}: cannot upload over {location.scheme}; use an s3:// or gs:// URL (or a folder)")
    out = Path(args.staging) if args.staging else (default_staging(args.out) if remote else Path(args.out))
    config = BuildConfig(
        images=args.images, annotations=args.annotations, out=out, size=args.size, sa1b=args.sa1b,
        max_masks=args.max_masks, mask_order=args.mask_order, drop_unannotated=args.drop_unannotated,
        samples_per_shard=args.samples_per_shard, workers=args.workers, image_format=args.image_format,
        quality=args.quality, overwrite=args.overwrite, max_skipped_fraction=args.max_skipped_fraction,
        num_parts=args.num_parts, part=args.part, progress=not args.no_progress,
    )
    uploader = ShardUploader(location) if remote else None
    try:
        result = build_shards(config, on_shard=uploader.submit if uploader else None)
    finally:
        if uploader is not None:
            uploader.finish()
    if result.noop:
        print(f"{result.manifest_path}: up to date (same inputs and settings); nothing to do")
    else:
        rate = result.processed_images / max(result.seconds, 1e-9)
        print(f"built {result.built_shards} shards ({result.processed_images} images, {rate:.0f} img/s), reused "
              f"{result.reused_shards}, in {result.seconds:.1f} s")
    shown = str(result.manifest_path)
    if remote:
        published = publish(out, result.manifest_path.name, location, progress=not args.no_progress,
                            skip=set(uploader.uploaded), resend_all=args.overwrite)
        print(f"uploaded {len(uploader.uploaded) + published.uploaded} shards to {args.out} (kept "
              f"{published.kept} already there), then {result.manifest_path.name}")
        shown = published.url
    for line in summary_lines(result.manifest, shown):
        print(line)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from wam_pipe.data.shards.verify import verify_shards

    manifest, problems = verify_shards(args.directory, workers=args.workers)
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        print(f"{args.directory}: {len(problems)} problems found", file=sys.stderr)
        return 1
    totals = manifest["totals"]
    print(f"{args.directory}: OK: {totals['shards']} shards, {totals['samples']} samples verified")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from wam_pipe.data.shards.inspect_shards import check_grid_target, describe, render_grid

    if args.out:  # render_grid checks again (for API callers); here a bad --out must fail before `describe` prints
        check_grid_target(args.out, args.samples)
    for line in describe(args.directory):
        print(line)
    if args.out:
        drawn = render_grid(args.directory, args.out, args.samples)
        if not drawn:
            print(f"{args.directory}: holds no samples; {args.out} not written", file=sys.stderr)
            return 1
        print(f"wrote {args.out} ({drawn} samples with their instance masks)")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from wam_pipe.data.shards.manifest_summary import summary_lines
    from wam_pipe.data.shards.merge import merge_parts

    path, manifest = merge_parts(args.inputs, args.out)
    for line in summary_lines(manifest, str(path)):
        print(line)
    return 0
