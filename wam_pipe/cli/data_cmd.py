"""`wam-pipe data synth`: write a synthetic COCO dataset (real JPEGs + instances JSON) for quickstarts and tests,
or (`--format sa1b`) SA-1B-style tars (real JPEGs + JSONs with compressed RLE).

Layout: OUT/images/*.jpg and OUT/annotations.json (writing the same dataset again is a no-op), or OUT/sa_NNNNNN.tar.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="make datasets (synth)", description=__doc__)
    which = parser.add_subparsers(dest="data_command", metavar="ACTION")
    which.required = True
    synth = which.add_parser("synth", help="write a synthetic COCO dataset (or SA-1B-style tars)", description=__doc__)
    synth.add_argument("--out", required=True, help="output folder (images/ and annotations.json, or the tars)")
    synth.add_argument("--images", type=int, required=True, help="number of images")
    synth.add_argument("--format", choices=["coco", "sa1b"], default="coco",
                       help="coco: images/ + annotations.json; sa1b: SA-1B-style tars of sa_N.jpg + sa_N.json pairs")
    synth.add_argument("--per-tar", type=int, default=100, help="sa1b: images per tar (default 100)")
    synth.add_argument("--width", type=int, default=320, help="sa1b: image width (default 320)")
    synth.add_argument("--height", type=int, default=240, help="sa1b: image height (default 240)")
    synth.add_argument("--masks", type=int, default=8, help="sa1b: masks per image (default 8; SA-1B has ~100)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--min-size", type=int, default=160, help="smallest side in pixels (default 160)")
    synth.add_argument("--max-size", type=int, default=480, help="largest side in pixels (default 480)")
    synth.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    synth.set_defaults(func=_synth)


def _synth(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.format == "sa1b":
        from wam_pipe.data.synth_sa1b import write_synthetic_sa1b

        tars = write_synthetic_sa1b(args.out, args.images, per_tar=args.per_tar, seed=args.seed, width=args.width,
                                    height=args.height, masks=args.masks)
        print(f"wrote {args.images} images ({args.width}x{args.height}, {args.masks} masks each) in {len(tars)} "
              f"SA-1B-style tars in {args.out}")
        return 0

    from wam_pipe.data.synth import write_synthetic_coco

    out = Path(args.out)
    images, annotations = out / "images", out / "annotations.json"
    wrote = write_synthetic_coco(images, annotations, args.images, seed=args.seed, min_size=args.min_size,
                                 max_size=args.max_size, workers=args.workers)
    state = "wrote" if wrote else "already up to date:"
    print(f"{state} {args.images} images in {images} and {annotations}")
    return 0
