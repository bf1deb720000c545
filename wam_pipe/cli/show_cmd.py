"""`wam-pipe show PIPELINE.yaml [key=value ...] [--resolved] [--defaults]`: print the composed pipeline YAML.

--resolved   resolve interpolations (`${vars.nbits}` -> 32)
--defaults   fill in every `run:` setting and every constructor default of every `_target_` node under `stages`,
             so every knob is visible (the pipeline is validated first; `vars` is shown as written)
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from wam_pipe.cli._common import add_pipeline_arguments


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("show", help="print the composed pipeline (optionally resolved, with all defaults)",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pipeline_arguments(parser)
    parser.add_argument("--resolved", action="store_true", help="resolve interpolations")
    parser.add_argument("--defaults", action="store_true", help="show every run setting and constructor default")
    parser.set_defaults(func=_show)


def with_defaults(node: Any, resolved: Any, allow_targets: list[str] | tuple[str, ...] = ()) -> Any:
    """A copy of `node` where every `_target_` node also lists the parameters it leaves at their defaults.

    `resolved` is the same tree with interpolations resolved: the target named there (`_target_: ${vars.model}`)
    decides the parameters. Only call it on a validated tree: a target is imported after the allowlist allows it.
    """
    from wam_pipe.core.signature import default_for_yaml, signature_of
    from wam_pipe.core.targets import TargetError, import_allowed
    from wam_pipe.core.errors import UserError

    if isinstance(node, list):
        others = resolved if isinstance(resolved, list) and len(resolved) == len(node) else [None] * len(node)
        return [with_defaults(v, r, allow_targets) for v, r in zip(node, others)]
    if not isinstance(node, dict):
        return node
    others = resolved if isinstance(resolved, dict) else {}
    out = {k: with_defaults(v, others.get(k), allow_targets) for k, v in node.items()}
    target = others.get("_target_")
    if isinstance(target, str):
        try:
            sig = signature_of(import_allowed(target, allow_targets))
        except TargetError as err:  # compose() validated the tree, so only a race with the file system gets here
            raise UserError(str(err)) from err
        positional = len(others.get("_args_") or []) if isinstance(others.get("_args_"), list) else 0
        for i, (name, param) in enumerate(sig.params.items() if sig else []):
            if i < positional or name in out or (param.required and node.get("_partial_")):
                continue
            out[name] = default_for_yaml(param)
    return out


def run_defaults(run: Any) -> dict[str, Any]:
    """The `run:` block with every RunSettings field, in declaration order (written values kept)."""
    from wam_pipe.core.settings import RunSettings

    written = run if isinstance(run, dict) else {}
    return {f.name: written.get(f.name, f.default) for f in dataclasses.fields(RunSettings)}


def _show(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from wam_pipe.config import TOP_LEVEL_KEYS, compose

    pipeline = compose(args.pipeline, args.overrides)  # validated: every stage target passed the allowlist
    data = pipeline.resolved if args.resolved else OmegaConf.to_container(pipeline.cfg, resolve=False)
    if args.defaults:
        resolved = pipeline.resolved
        allow = list(resolved.get("allow_targets") or [])
        filled = {"run": run_defaults(data.get("run")),
                  "stages": with_defaults(data["stages"], resolved["stages"], allow)}
        data = {key: filled.get(key, data.get(key)) for key in TOP_LEVEL_KEYS if key in data or key in filled}
    print(OmegaConf.to_yaml(OmegaConf.create(data), sort_keys=False), end="")
    return 0
