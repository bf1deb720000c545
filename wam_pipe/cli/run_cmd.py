"""`wam-pipe run PIPELINE.yaml [key=value ...]`: validate, build every stage, then run the pipeline.

Examples:
  wam-pipe run pipelines/quickstart.yaml
  wam-pipe run pipelines/train.yaml stages.step.optimizer.lr=1e-4 run.epochs=10
  wam-pipe run pipelines/train.yaml --nproc 8                 # 8 GPUs on this node (launches torchrun)
  torchrun --nproc_per_node=8 -m wam_pipe run pipelines/train.yaml
  wam-pipe run runs/wam-pretrain/config.yaml                  # resume (or repeat) a run from its run dir

A run dir that holds a run of the same pipeline is resumed from its last checkpoint; one of a different
configuration is refused unless --overwrite (one holding only the config files of a run that failed before any work
is reused). A non-empty dir that is not a run dir is never written to: choose another --output-dir.
"""

from __future__ import annotations

import argparse
import os

from wam_pipe.cli._common import add_pipeline_arguments, check_overrides
from wam_pipe.core.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("run", help="validate and run a pipeline (resumes an interrupted run)",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pipeline_arguments(parser)
    parser.add_argument("--only", metavar="STAGE", help="run just this stage: shard-build, step (train, no eval) or eval")
    parser.add_argument("--output-dir", metavar="DIR", help="run directory (default: run.output_dir, runs/<name>)")
    parser.add_argument("--overwrite", action="store_true", help="replace a previous run in the run directory")
    parser.add_argument("--nproc", type=int, metavar="N",
                        help="launch N processes on this node with torchrun (one per GPU)")
    parser.set_defaults(func=_run, parser=parser)


def _run(args: argparse.Namespace) -> int:
    check_overrides(args.parser, args.overrides)
    if args.nproc is not None and args.nproc < 1:
        raise UserError(f"--nproc {args.nproc}: give the number of processes to launch, at least 1")
    if args.nproc and args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        from wam_pipe.config import compose
        from wam_pipe.core.distributed import launch_torchrun

        compose(args.pipeline, args.overrides)  # report config errors once, before starting N processes
        return launch_torchrun(args.nproc, _rank_argv(args))

    from wam_pipe.config import compose
    from wam_pipe.runner.run import run_pipeline

    pipeline = compose(args.pipeline, args.overrides)
    run_dir = run_pipeline(pipeline, output_dir=args.output_dir, overwrite=args.overwrite, only=args.only)
    if int(os.environ.get("RANK", 0)) == 0:
        print(f"done: {run_dir}")
    return 0


def _rank_argv(args: argparse.Namespace) -> list[str]:
    """The command each torchrun process runs: this one, from the parsed arguments, without --nproc."""
    argv = ["--debug"] if args.debug else []
    argv += ["run", args.pipeline, *args.overrides]
    if args.only:
        argv += ["--only", args.only]
    if args.output_dir:
        argv += ["--output-dir", args.output_dir]
    if args.overwrite:
        argv.append("--overwrite")
    return argv
