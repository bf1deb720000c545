"""`wam-pipe run PIPELINE.yaml [key=value ...]`: validate, build every stage, then run the pipeline.

Examples:
  wam-pipe run pipelines/quickstart.yaml
  wam-pipe run pipelines/train.yaml stages.step.optimizer.lr=1e-4 run.epochs=10
  wam-pipe run pipelines/train.yaml --nproc 8                 # 8 GPUs on this node (launches torchrun)
  torchrun --nproc_per_node=8 -m wam_pipe run pipelines/train.yaml
  wam-pipe run runs/wam-pretrain/config.yaml                  # resume (or repeat) a run from its run dir
  wam-pipe run pipelines/quickstart.yaml --multirun stages.step.optimizer.lr=2e-3,1e-3 run.seed=range(0,3)
  srun --ntasks-per-node=8 --gpus-per-node=8 wam-pipe run pipelines/train.yaml   # Slurm: one task per GPU

A run dir that holds a run of the same pipeline is resumed from its last checkpoint; one of a different
configuration is refused unless --overwrite (one holding only the config files of a run that failed before any work
is reused). A non-empty dir that is not a run dir is never written to: choose another --output-dir.

--multirun runs every point of a sweep (`a=1,2`, `choice(...)`, `range(...)`, several swept keys = their product)
one after the other, each in its own run dir `runs/<name>/sweep-<id>/<i>/` next to `sweep.json`; every point is
validated before the first one runs; the same command again resumes the sweep. `wam-pipe report` on the sweep dir
prints one table of all points. Under srun, torch.distributed is set up from Slurm's variables (docs/scale.md).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

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
    parser.add_argument("--multirun", action="store_true",
                        help="sweep: one run per point of the swept overrides (a=1,2 run.seed=range(0,3))")
    parser.set_defaults(func=_run, parser=parser)


def _run(args: argparse.Namespace) -> int:
    check_overrides(args.parser, args.overrides)
    if args.nproc is not None and args.nproc < 1:
        raise UserError(f"--nproc {args.nproc}: give the number of processes to launch, at least 1")
    if args.multirun:
        return _multirun(args)
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


def _multirun(args: argparse.Namespace) -> int:
    """Every point of the sweep, in order, each in its own run dir (torchrun per point with --nproc)."""
    from wam_pipe.config.sweep import compose_sweep
    from wam_pipe.core.distributed import env_coordinates, launch_torchrun
    from wam_pipe.runner.run import run_pipeline
    from wam_pipe.runner.sweep import run_points, sweep_dir, write_sweep_file

    sweep = compose_sweep(args.pipeline, args.overrides)
    root = sweep_dir(sweep, args.output_dir)
    main_rank = env_coordinates()[0] == 0
    if main_rank:
        write_sweep_file(root, sweep)

    def run_point(i: int, overrides: list[str], run_dir: Path) -> None:
        if args.nproc and args.nproc > 1 and "WORLD_SIZE" not in os.environ:
            code = launch_torchrun(args.nproc, _rank_argv(args, overrides, str(run_dir)))
            if code:
                raise RuntimeError(f"exit code {code}")
        else:
            run_pipeline(sweep.pipelines[i], output_dir=str(run_dir), overwrite=args.overwrite, only=args.only)

    failed = run_points(sweep, root, run_point, log=print if main_rank else (lambda line: None))
    if main_rank:
        print(f"done: {root} ({len(sweep.points) - len(failed)}/{len(sweep.points)} points"
              f"{', failed: ' + ' '.join(map(str, failed)) if failed else ''}); wam-pipe report {root}")
    return 1 if failed else 0


def _rank_argv(args: argparse.Namespace, overrides: list[str] | None = None,
               output_dir: str | None = None) -> list[str]:
    """The command each torchrun process runs: this one, from the parsed arguments, without --nproc (a sweep
    point: its overrides and run dir, without --multirun)."""
    argv = ["--debug"] if args.debug else []
    argv += ["run", args.pipeline, *(args.overrides if overrides is None else overrides)]
    if args.only:
        argv += ["--only", args.only]
    if output_dir or args.output_dir:
        argv += ["--output-dir", output_dir or args.output_dir]
    if args.overwrite:
        argv.append("--overwrite")
    return argv
