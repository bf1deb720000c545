"""`wam-pipe data synth`: write a synthetic COCO dataset (real JPEGs + instances JSON) for quickstarts and tests.

Layout: OUT/images/*.jpg and OUT/annotations.json. Writing the same dataset again is a no-op.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="make datasets (synth)", description=__doc__)
    which = parser.add_subparsers(dest="data_command", metavar="ACTION")
    which.required = True
    synth = which.add_parser("synth", help="write a synthetic COCO dataset", description=__doc__)
    synth.add_argument("--out", required=True, help="output folder (images/ and annotations.json go here)")
    synth.add_argument("--images", type=int, required=True, help="number of images")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--min-size", type=int, default=160, help="smallest side in pixels (default 160)")
    synth.add_argument("--max-size", type=int, default=480, help="largest side in pixels (default 480)")
    synth.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    synth.set_defaults(func=_synth)


def _synth(args: argparse.Namespace) -> int:
    from pathlib import Path

    from wam_pipe.data.synth import write_synthetic_coco

    out = Path(args.out)
    images, annotations = out / "images", out / "annotations.json"
    wrote = write_synthetic_coco(images, annotations, args.images, seed=args.seed, min_size=args.min_size,
                                 max_size=args.max_size, workers=args.workers)
    state = "wrote" if wrote else "already up to date:"
    print(f"{state} {args.images} images in {images} and {annotations}")
    return 0
