"""`wam-pipe embed`: watermark an image with a trained checkpoint, at the image's full resolution.

Examples:
  wam-pipe embed --checkpoint runs/quickstart/checkpoints/last.pt --image photo.jpg --random --out marked.png
  wam-pipe embed --checkpoint C.pt --image photo.jpg --message 01101001... --mask region.png --out marked.png

Prints the message used and the PSNR of the output against the input. Save as .png: JPEG would compress the
watermark away in part (detection then still works, with lower accuracy).
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("embed", help="watermark an image with a trained checkpoint", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a .pt file written by wam-pipe training, or a folder written by wam-pipe export")
    parser.add_argument("--image", required=True, help="input image (PNG, JPEG, ...)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--message", help="the bits to embed, e.g. 0110... (as many as the checkpoint's nbits)")
    which.add_argument("--random", action="store_true", help="embed a random message (printed)")
    parser.add_argument("--seed", type=int, default=None, help="seed of --random (default: a fresh random message)")
    parser.add_argument("--mask", help="watermark only where this black/white image (same size) is white")
    parser.add_argument("--out", required=True, help="output image (.png recommended)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--allow-target", action="append", default=[], metavar="PATTERN",
                        help="trust this import pattern in the checkpoint's config (custom components)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(func=_embed)


def _embed(args: argparse.Namespace) -> int:
    import torch

    from wam_pipe.inference.api import load
    from wam_pipe.inference.image_io import format_message, parse_message, read_image, read_mask, write_image

    image = read_image(args.image)
    mask = read_mask(args.mask, tuple(image.shape[-2:])) if args.mask else None
    model = load(args.checkpoint, args.device, allow_targets=args.allow_target)
    if args.message is not None:
        message = parse_message(args.message, model.nbits)
    else:
        generator = torch.Generator()
        generator.manual_seed(args.seed) if args.seed is not None else generator.seed()
        message = model.random_messages(1, generator)[0]
    result = model.embed(image, message, masks=mask)
    write_image(args.out, result.image)
    text = format_message(message)
    if args.json:
        print(json.dumps({"out": str(args.out), "message": text, "nbits": model.nbits, "psnr": round(result.psnr, 3),
                          "size": [int(image.shape[-1]), int(image.shape[-2])]}))
    else:
        print(f"message: {text}")
        print(f"psnr: {result.psnr:.2f} dB")
        print(f"wrote {args.out} ({image.shape[-1]}x{image.shape[-2]})")
    return 0
