"""`wam-pipe export`: write a trained model as files to share: safetensors weights plus a JSON config, no pickle.

Examples:
  wam-pipe export runs/quickstart/checkpoints/last.pt --format safetensors --out models/quickstart
  wam-pipe detect --checkpoint models/quickstart --image marked.png

The folder holds `model.safetensors` (the weights; the format holds tensors only, so loading it runs no code) and
`wam_pipe.json` (the model's config, validated against the import allowlist when read). Python:
`wam_pipe.load("models/quickstart")`. Optimizer state, RNG state and the training pipeline are not exported: use the
checkpoint to resume training.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("export", help="write a checkpoint's model as safetensors + JSON config for sharing",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", metavar="CKPT", help="a .pt file written by wam-pipe training or import-wam, or a reference .pth "
                        "(the released wam_mit.pth etc.; a params.json beside it is used)")
    parser.add_argument("--format", default="safetensors", choices=["safetensors"],
                        help="file format (default and only: safetensors)")
    parser.add_argument("--out", required=True, help="folder to write model.safetensors and wam_pipe.json into")
    parser.add_argument("--allow-target", action="append", default=[], metavar="PATTERN",
                        help="trust this import pattern in the checkpoint's config (custom components)")
    parser.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from wam_pipe.inference.export import CONFIG_NAME, WEIGHTS_NAME, export_safetensors

    out = export_safetensors(args.checkpoint, args.out, allow_targets=args.allow_target)
    size = (out / WEIGHTS_NAME).stat().st_size
    print(f"wrote {out / WEIGHTS_NAME} ({size / 1e6:.1f} MB) and {out / CONFIG_NAME}")
    return 0
