"""`wam-pipe show PIPELINE.yaml [key=value ...] [--resolved] [--defaults]`: print the composed pipeline YAML.

--resolved   resolve interpolations (`${vars.nbits}` -> 32)
--defaults   fill in every constructor default of every `_target_` node, so every knob is visible
"""

from __future__ import annotations

import argparse
from typing import Any

from wam_pipe.cli._common import add_pipeline_arguments


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("show", help="print the composed pipeline (optionally resolved, with all defaults)",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pipeline_arguments(parser)
    parser.add_argument("--resolved", action="store_true", help="resolve interpolations")
    parser.add_argument("--defaults", action="store_true", help="show every constructor default")
    parser.set_defaults(func=_show)


def with_defaults(node: Any) -> Any:
    """A copy of `node` where every `_target_` node also lists the parameters it leaves at their defaults."""
    from wam_pipe.config.signature import default_for_yaml, signature_of
    from wam_pipe.config.targets import import_target

    if isinstance(node, list):
        return [with_defaults(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: with_defaults(v) for k, v in node.items()}
    target = node.get("_target_")
    if isinstance(target, str):
        sig = signature_of(import_target(target))
        for name, param in (sig.params.items() if sig else []):
            if name not in out and not (param.required and node.get("_partial_")):
                out[name] = default_for_yaml(param)
    return out


def _show(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from wam_pipe.config import compose

    pipeline = compose(args.pipeline, args.overrides)
    data = pipeline.resolved if args.resolved else OmegaConf.to_container(pipeline.cfg, resolve=False)
    if args.defaults:
        data = with_defaults(data)
    print(OmegaConf.to_yaml(OmegaConf.create(data), sort_keys=False), end="")
    return 0
