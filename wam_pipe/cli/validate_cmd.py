"""`wam-pipe validate PIPELINE.yaml [key=value ...]`: every check short of running, all errors at once.

Needs no data and no GPU: the file is parsed, overrides applied, interpolations resolved, every `_target_` checked
against the allowlist and its constructor's signature, and every stage built (constructors do no I/O).
With --multirun, every point of the sweep is checked the same way (`a=1,2 run.seed=range(0,3)`).
"""

from __future__ import annotations

import argparse

from wam_pipe.cli._common import add_pipeline_arguments


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("validate", help="check a pipeline file (all errors at once), run nothing",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pipeline_arguments(parser)
    parser.add_argument("--multirun", action="store_true", help="check every point of a sweep (a=1,2 ...)")
    parser.set_defaults(func=_validate)


def _validate(args: argparse.Namespace) -> int:
    from wam_pipe.config import build_stages, compose

    if args.multirun:
        return _validate_sweep(args)
    pipeline = compose(args.pipeline, args.overrides)
    stages = build_stages(pipeline.resolved, pipeline.file)
    print(f"{pipeline.file}: ok ({pipeline.name}: {', '.join(stages)})")
    return 0


def _validate_sweep(args: argparse.Namespace) -> int:
    from wam_pipe.config import build_stages
    from wam_pipe.config.sweep import compose_sweep
    from wam_pipe.core.errors import ConfigError

    sweep = compose_sweep(args.pipeline, args.overrides)
    errors = []
    for i, (pipeline, values) in enumerate(zip(sweep.pipelines, sweep.values)):
        try:
            build_stages(pipeline.resolved, pipeline.file)
        except ConfigError as err:
            label = " ".join(f"{k}={v}" for k, v in values.items())
            errors.extend(f"point {i} ({label}): {line}" for line in err.errors)
    if errors:
        raise ConfigError(errors)
    swept = ", ".join(f"{k} ({len(v)})" for k, v in sweep.swept.items())
    print(f"{sweep.file}: ok, {len(sweep.points)} points ({swept}), sweep {sweep.id}")
    return 0
