"""`wam-pipe import-wam`: a Watermark Anything reference checkpoint -> a wam-pipe checkpoint.

Examples:
  wam-pipe import-wam checkpoints/wam_mit.pth --out models/wam_mit.pt
  wam-pipe import-wam my_wam_run/checkpoint.pth --params my_wam_run/params.json --out models/my_wam.pt

SRC is the reference's `state_dict` saved with torch.save (the released wam_mit.pth / wam_coco.pth / Hugging Face
checkpoint.pth), or a dict holding one under `model`. It is read with weights_only=True (no pickled code runs) and
every key and shape is checked against the released configuration (vae_small + sam_base, 32 bits, 256 px,
jnd_1_3_blue, scaling_w 2.0, scaling_i 1.0) or the one --params describes (the reference's params.json: embedder_model,
extractor_model, nbits, img_size, attenuation, scaling_w, scaling_i). The output holds the weights and the config that
rebuilds the model, so embed, detect, calibrate, eval and step.init_from take it like any wam-pipe checkpoint.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("import-wam", help="convert a reference WAM checkpoint (wam_mit.pth) to a wam-pipe one",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", metavar="SRC", help="the reference checkpoint (.pth)")
    parser.add_argument("--out", required=True, help="the wam-pipe checkpoint to write (.pt)")
    parser.add_argument("--params", help="the reference params.json it was trained with (default: the released one)")
    parser.set_defaults(func=_import)


def _import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from wam_pipe.core.checkpoint import save_checkpoint
    from wam_pipe.models.reference_layout import (RELEASED, import_reference_checkpoint, parameter_count,
                                                  read_reference_params)

    params = read_reference_params(args.params) if args.params else RELEASED
    checkpoint = import_reference_checkpoint(args.src, params)
    checkpoint.pop("format")
    save_checkpoint(Path(args.out), checkpoint)
    print(f"{args.out}: {params.describe()}, scaling_w {params.scaling_w}, scaling_i {params.scaling_i}; "
          f"{len(checkpoint['model'])} tensors, {parameter_count(checkpoint['model']) / 1e6:.2f}M parameters "
          f"(from {args.src})")
    return 0
