"""`wam-pipe export-wam`: a wam-pipe checkpoint -> the reference's layout, to use with its own code.

Examples:
  wam-pipe export-wam runs/wam-finetune-released/checkpoints/last.pt --out wam_mine.pth --params-out params.json

Writes the reference `Wam`'s state_dict (bare, as the released wam_mit.pth) and, with --params-out, the params.json
that the reference's `load_model_from_checkpoint(json_path, ckpt_path)` reads (run from its repository root: the
json names its configs/ files). Only models the reference can build are exported: the VAE embedder (vae_small,
vae_big) with a SAM extractor (sam_tiny, sam_small, sam_base at their preset depth/window), at 256 px, with or without
one of the JND presets. The CPU conv models (ConvEmbedder, ConvExtractor) are refused. Note: the reference's loader
builds the extractor named by its configs/extractor.yaml (`model: sam_base`), so a sam_tiny/sam_small export needs
that line edited.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("export-wam", help="write a checkpoint in the reference WAM layout (+ its params.json)",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", metavar="CKPT", help="a wam-pipe checkpoint (.pt)")
    parser.add_argument("--out", required=True, help="the reference-layout state_dict to write (.pth)")
    parser.add_argument("--params-out", help="also write the matching params.json here")
    parser.add_argument("--allow-target", action="append", default=[], metavar="PATTERN",
                        help="trust this import pattern in the checkpoint's config (custom components)")
    parser.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    import json
    import os
    from pathlib import Path

    from wam_pipe.core.errors import UserError
    from wam_pipe.config.checkpoint_model import load_watermarker
    from wam_pipe.models.reference_layout import ReferenceLayoutError, reference_params_of, to_reference_state
    from wam_pipe.core.checkpoint import save_atomic

    loaded = load_watermarker(args.checkpoint, "cpu", args.allow_target)
    try:
        params = reference_params_of(loaded.model)
        state = to_reference_state(loaded.model)
    except ReferenceLayoutError as err:
        raise UserError(f"{args.checkpoint}: cannot export to the reference layout: {err}") from err
    save_atomic(Path(args.out), state)
    if args.params_out:
        out = Path(args.params_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps(params.to_json(), indent=2) + "\n")
        os.replace(tmp, out)
    print(f"{args.out}: reference layout, {len(state)} tensors ({params.describe()}, scaling_w {params.scaling_w})"
          + (f"; params: {args.params_out}" if args.params_out else "; no params.json written (--params-out)"))
    return 0
