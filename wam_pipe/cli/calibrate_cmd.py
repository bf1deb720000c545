"""`wam-pipe calibrate`: what `detect` sees on clean and on watermarked photos, to choose its --min-fraction.

Examples:
  wam-pipe calibrate --checkpoint runs/quickstart/checkpoints/last.pt --images photos/ --threshold 0.08
  wam-pipe calibrate --checkpoint C.pt --images photos/ --limit 20 --threshold 0.05 --threshold 0.08 --json cal.json

For each photo of --images (sorted, the first --limit), six cases: the clean photo, the photo watermarked over its
whole surface, and watermarked inside a fixed box of 20% of its area, each also after a JPEG (quality 80) round
trip. Prints per case the quantiles over photos of the predicted share of pixels (`fraction`), of the largest
connected predicted region (`region`, what --min-fraction tests), of the bit confidence (`bit_conf`) and, on
watermarked cases, of the bit accuracy (`bit_acc`), then the share of photos detected at each --threshold. Choose
--min-fraction above the clean photos' largest region and below the watermarked ones' (docs/eval.md).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("calibrate", help="measure detection on clean and watermarked photos (--min-fraction)",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a .pt file written by wam-pipe training")
    parser.add_argument("--images", required=True, help="a folder of clean photos (.jpg, .jpeg, .png)")
    parser.add_argument("--limit", type=int, default=80, help="photos to use (default 80)")
    parser.add_argument("--threshold", type=float, action="append", default=[],
                        help="a --min-fraction value to report the detection rate for (repeatable; default 0.08)")
    parser.add_argument("--seed", type=int, default=0, help="messages are drawn from seed + photo index")
    parser.add_argument("--json", help="also write the per-photo numbers and the summary to this file")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--allow-target", action="append", default=[], metavar="PATTERN",
                        help="trust this import pattern in the checkpoint's config (custom components)")
    parser.set_defaults(func=_calibrate)


def _calibrate(args: argparse.Namespace) -> int:
    from wam_pipe.inference.calibrate import calibrate
    from wam_pipe.core.distributed import pick_device

    calibrate(args.checkpoint, args.images, limit=args.limit, thresholds=args.threshold, seed=args.seed,
              json_path=args.json, device=pick_device(args.device, 0), allow_targets=args.allow_target)
    return 0
