"""`wam-pipe detect`: is there a watermark, where, and what message does it carry.

Examples:
  wam-pipe detect --checkpoint runs/quickstart/checkpoints/last.pt --image marked.png
  wam-pipe detect --checkpoint C.pt --image marked.png --mask-out predicted.png --json
  wam-pipe detect --checkpoint C.pt --image spliced.png --multi --mask-out regions.png
  wam-pipe detect --checkpoint C.pt --images photos/ --recursive --out results.jsonl
  wam-pipe detect --checkpoint C.pt --images 'photos/*.jpg' --out results.jsonl --batch-size 32 --workers 4

A pixel counts as watermarked when its detection probability is above 0.5; the image holds a watermark when the
largest connected region of such pixels covers at least --min-fraction of the image (default 0.08 = 8%; scattered
false positives on clean photos do not add up). Lower it to find smaller watermarks, at the price of more false
alarms (docs/eval.md has the measurements). The message is the bit logits averaged over the predicted pixels,
thresholded at 0; each bit's confidence is sigmoid(|mean logit|), from 0.5 (a guess) to 1.
--multi clusters the per-pixel bits (DBSCAN on at most --max-points pixels) and reports one message per region
(none when no watermark is present).
--images scans a folder (image files by extension; --recursive for sub-folders) or a glob pattern with batched
inference, decoding in --workers loader processes, and writes one JSON line per image to --out: path, detected,
confidence, region, fraction, message, bit_confidence; an unreadable file gets {"path", "error"} and the scan goes
on. A summary line ends the scan.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("detect", help="detect and decode watermarks in an image", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True,
                        help="a .pt file written by wam-pipe training, or a folder written by wam-pipe export")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--image", help="image to inspect")
    which.add_argument("--images", metavar="DIR|GLOB", help="scan a folder or a glob pattern (needs --out)")
    parser.add_argument("--recursive", action="store_true", help="--images: look in sub-folders too (and ** globs)")
    parser.add_argument("--out", help="--images: the JSON-lines results file to write")
    parser.add_argument("--batch-size", type=int, default=16, help="--images: images per forward pass (default 16)")
    parser.add_argument("--workers", type=int, default=2,
                        help="--images: loader processes decoding images (default 2; 0 = in this process)")
    parser.add_argument("--mask-out", help="write the predicted mask (PNG, input size; with --multi: label map)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--multi", action="store_true", help="find several messages (one per region)")
    parser.add_argument("--min-fraction", type=float, default=None,
                        help="a watermark is present when its largest connected region covers at least this share "
                             "of the image (default 0.08)")
    parser.add_argument("--min-region", type=float, default=0.01,
                        help="--multi: smallest region, as a fraction of the image (default 0.01)")
    parser.add_argument("--max-points", type=int, default=20000,
                        help="--multi: pixels sampled for clustering, bounding its time (default 20000)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--allow-target", action="append", default=[], metavar="PATTERN",
                        help="trust this import pattern in the checkpoint's config (custom components)")
    parser.set_defaults(func=_detect)


def _check_arguments(args: argparse.Namespace) -> None:
    from wam_pipe.core.errors import UserError
    from wam_pipe.inference.detect import DEFAULT_MIN_FRACTION

    if args.min_fraction is None:
        args.min_fraction = DEFAULT_MIN_FRACTION
    if not 0.0 <= args.min_fraction <= 1.0:
        raise UserError(f"--min-fraction: {args.min_fraction} is not in [0, 1]")
    if not 0.0 < args.min_region <= 1.0:
        raise UserError(f"--min-region: {args.min_region} is not in (0, 1]")
    if args.max_points < 100:
        raise UserError(f"--max-points: {args.max_points} is too small to cluster; use at least 100")
    if args.images is not None:
        if not args.out:
            raise UserError("--images needs --out results.jsonl (one JSON line per image)")
        if args.multi or args.mask_out or args.json:
            raise UserError("--multi, --mask-out and --json work with --image; --images writes JSON lines to --out")
    elif args.out:
        raise UserError("--out goes with --images; with --image use --json or --mask-out")


def _detect(args: argparse.Namespace) -> int:
    from wam_pipe.inference.api import load
    from wam_pipe.inference.image_io import read_image, write_mask

    _check_arguments(args)
    if args.images is not None:
        return _scan(args)
    image = read_image(args.image)
    model = load(args.checkpoint, args.device, allow_targets=args.allow_target)
    found = model.detect(image, min_fraction=args.min_fraction)
    report = _report(found, model.nbits, args)
    if args.multi:
        report["regions"] = _multi(found, image.shape[-2:], args)
    elif args.mask_out:
        write_mask(args.mask_out, found.mask)
    if args.json:
        print(json.dumps(report))
    else:
        _print_text(report)
    return 0


def _scan(args: argparse.Namespace) -> int:
    from wam_pipe.inference.api import load
    from wam_pipe.inference.scan import list_images, print_summary, scan

    files = list_images(args.images, args.recursive)
    model = load(args.checkpoint, args.device, allow_targets=args.allow_target)
    summary = scan(model, files, args.out, batch_size=args.batch_size, workers=args.workers,
                   min_fraction=args.min_fraction)
    print_summary(summary, args.out)
    return 0


def _report(found: Any, nbits: int, args: argparse.Namespace) -> dict[str, Any]:
    from wam_pipe.inference.image_io import format_message

    return {"image": str(args.image), "present": found.present, "fraction": round(found.fraction, 6),
            "region": round(found.region, 6), "min_fraction": args.min_fraction, "nbits": nbits,
            "message": format_message(found.message),
            "bit_confidence": [round(float(c), 4) for c in found.bit_confidence]}


def _multi(found: Any, size: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    import torch
    import torch.nn.functional as F

    from wam_pipe.inference.image_io import format_message, write_labels
    from wam_pipe.inference.multi import cluster_messages

    if found.present:
        regions, labels = cluster_messages(found.logits, max_points=args.max_points, min_fraction=args.min_region)
    else:  # no watermark: no messages to report, whatever noise the clustering could group
        regions, labels = [], torch.zeros(found.logits.shape[-2:], dtype=torch.int64)  # (s, s)
    if args.mask_out:
        full = F.interpolate(labels[None, None].float(), size=tuple(size), mode="nearest")[0, 0].long()  # (H, W)
        write_labels(args.mask_out, full, len(regions))
    return [{"label": i, "message": format_message(r.message), "fraction": round(r.fraction, 6),
             "bit_confidence": [round(float(c), 4) for c in r.confidence]} for i, r in enumerate(regions, start=1)]


def _print_text(report: dict[str, Any]) -> None:
    state = "watermark detected" if report["present"] else "no watermark detected"
    print(f"{report['image']}: {state} (largest region {100 * report['region']:.2f}% of the image, threshold "
          f"{100 * report['min_fraction']:.2f}%; {100 * report['fraction']:.2f}% of pixels predicted)")
    print(f"message:    {report['message']}")
    print(f"confidence: {_confidence_line(report['bit_confidence'])} (mean {_mean(report['bit_confidence']):.3f})")
    for region in report.get("regions", []):
        print(f"region {region['label']}: {region['message']} ({100 * region['fraction']:.2f}% of pixels, mean "
              f"confidence {_mean(region['bit_confidence']):.3f})")
    if "regions" in report and not report["regions"]:
        print("no region large enough to hold a message (--min-region)")


def _confidence_line(confidence: list[float]) -> str:
    """One digit per bit: 0 for 0.50-0.55 ... 9 for 0.95-1.00, aligned under the message."""
    return "".join(str(min(9, int((c - 0.5) * 20))) for c in confidence)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
