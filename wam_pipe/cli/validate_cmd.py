"""`wam-pipe validate PIPELINE.yaml [key=value ...]`: every check short of running, all errors at once.

Needs no data and no GPU: the file is parsed, overrides applied, interpolations resolved, every `_target_` checked
against the allowlist and its constructor's signature, and every stage built (constructors do no I/O).
"""

from __future__ import annotations

import argparse

from wam_pipe.cli._common import add_pipeline_arguments


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("validate", help="check a pipeline file (all errors at once), run nothing",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pipeline_arguments(parser)
    parser.set_defaults(func=_validate)


def _validate(args: argparse.Namespace) -> int:
    from wam_pipe.config import build_stages, compose

    pipeline = compose(args.pipeline, args.overrides)
    stages = build_stages(pipeline.resolved, pipeline.file)
    print(f"{pipeline.file}: ok ({pipeline.name}: {', '.join(stages)})")
    return 0
