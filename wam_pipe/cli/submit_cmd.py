"""`wam-pipe submit PIPELINE.yaml [key=value ...] --nodes N --gpus-per-node G`: run a pipeline as a Slurm job.

Submitted through submitit: N nodes x G tasks (one per GPU), torch.distributed set up from Slurm's variables, the
job's logs in RUN_DIR/slurm/<job id>/, and resume on requeue: on preemption or near the time limit Slurm sends
USR2, the job requeues itself and the next start resumes the run dir from its last checkpoint. With --multirun,
one job per point of the sweep (a job array), each in runs/<name>/sweep-<id>/<i>/ as `run --multirun` would.
The pipeline is validated (every point of a sweep) before anything is submitted.

Examples:
  wam-pipe submit pipelines/train.yaml --nodes 2 --gpus-per-node 8 --partition gpu --time 24:00:00
  wam-pipe submit pipelines/train.yaml --nodes 2 --gpus-per-node 8 --dry-run     # the job script, no Slurm needed
  wam-pipe submit pipelines/quickstart.yaml --gpus-per-node 0 --tasks-per-node 2 run.device=cpu   # CPU, gloo
  wam-pipe submit pipelines/quickstart.yaml --multirun run.seed=range(0,4) --gpus-per-node 1
"""

from __future__ import annotations

import argparse
import os

from wam_pipe.cli._common import add_pipeline_arguments, check_overrides


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("submit", help="run a pipeline (or a sweep) as a Slurm job, resumed after requeue",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pipeline_arguments(parser)
    parser.add_argument("--nodes", type=int, default=1, metavar="N", help="nodes (default 1)")
    parser.add_argument("--gpus-per-node", type=int, default=1, metavar="G",
                        help="GPUs per node, one task each (default 1; 0 for a CPU job)")
    parser.add_argument("--tasks-per-node", type=int, metavar="T", help="tasks per node (default: G, at least 1)")
    parser.add_argument("--cpus-per-task", type=int, metavar="C", help="CPUs per task (default: the partition's)")
    parser.add_argument("--partition", metavar="P", help="Slurm partition (default: the cluster's default)")
    parser.add_argument("--time", default="60", metavar="T",
                        help="time limit per start: minutes or [D-]HH:MM[:SS] (default 60); the job requeues itself "
                             "before it and resumes")
    parser.add_argument("--output-dir", metavar="DIR", help="run directory (default: run.output_dir, runs/<name>)")
    parser.add_argument("--overwrite", action="store_true", help="replace a previous run (first start only)")
    parser.add_argument("--only", metavar="STAGE", help="run just this stage: shard-build, step or eval")
    parser.add_argument("--multirun", action="store_true", help="a sweep: one job per point (a job array)")
    parser.add_argument("--dry-run", action="store_true", help="print the job script and environment, submit nothing")
    parser.add_argument("--wait", action="store_true", help="wait for the job(s) to end; exit 1 if one failed")
    parser.set_defaults(func=_submit, parser=parser)


def _submit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from wam_pipe.core.errors import UserError
    from wam_pipe.core.settings import RunSettings
    from wam_pipe.runner import slurm

    check_overrides(args.parser, args.overrides)
    for flag, value, least in (("--nodes", args.nodes, 1), ("--gpus-per-node", args.gpus_per_node, 0),
                               ("--tasks-per-node", args.tasks_per_node, 1),
                               ("--cpus-per-task", args.cpus_per_task, 1)):
        if value is not None and value < least:
            raise UserError(f"{flag} {value}: must be at least {least}")
    time_min = slurm.minutes(args.time)
    cwd = os.getcwd()
    if args.multirun:
        from wam_pipe.config.sweep import compose_sweep
        from wam_pipe.runner.sweep import sweep_dir, write_sweep_file

        sweep = compose_sweep(args.pipeline, args.overrides)
        root = sweep_dir(sweep, args.output_dir).absolute()
        name = sweep.pipelines[0].name
        runs = [slurm.SlurmRun(args.pipeline, point, str(root / str(i)), cwd, args.overwrite, args.only)
                for i, point in enumerate(sweep.points)]
        folder, where = root / "slurm" / "%j", root
    else:
        from wam_pipe.config import compose

        pipeline = compose(args.pipeline, args.overrides)
        settings = RunSettings.from_dict(dict(pipeline.resolved.get("run") or {}), pipeline.name)
        run_dir = Path(args.output_dir or settings.output_dir).absolute()
        name = pipeline.name
        runs = [slurm.SlurmRun(args.pipeline, list(args.overrides), str(run_dir), cwd, args.overwrite, args.only)]
        folder, where = run_dir / "slurm" / "%j", run_dir
    params = slurm.sbatch_parameters(f"wam-{name}", args.nodes, args.gpus_per_node, args.tasks_per_node,
                                     args.partition, time_min, args.cpus_per_task)
    if args.dry_run:
        return _print_dry_run(slurm, params, folder, runs, args)

    slurm.submitit_module()
    slurm.check_slurm_reachable()
    if args.multirun:
        write_sweep_file(root, sweep)
    jobs = slurm.submit(runs, params, folder)
    tasks = params["nodes"] * params["ntasks_per_node"]
    ids = " ".join(job.job_id for job in jobs)
    print(f"submitted {len(jobs)} job{'s' if len(jobs) > 1 else ''} ({ids}): {args.nodes} node(s) x "
          f"{params['ntasks_per_node']} task(s) = {tasks} rank(s) each -> {where} (logs: {folder.parent}/<job id>/)")
    if not args.wait:
        print(f"follow: squeue -j {jobs[0].job_id.split('_')[0]}; tail -f {folder.parent}/<job id>/*_0_log.out")
        return 0
    failed = 0
    for job in jobs:
        try:
            job.result()
        except Exception as err:  # noqa: BLE001  the job's own traceback is in its log
            failed += 1
            print(f"job {job.job_id} failed: {str(err).strip().splitlines()[-1] if str(err).strip() else err!r} "
                  f"(log: {job.paths.stderr})")
    print(f"done: {where} ({len(jobs) - failed}/{len(jobs)} job(s) succeeded)")
    return 1 if failed else 0


def _print_dry_run(slurm, params, folder, runs, args) -> int:  # noqa: ANN001
    script = slurm.job_script(params, folder, array=len(runs) if len(runs) > 1 else None)
    tasks = params["nodes"] * params["ntasks_per_node"]
    print("# job script (sbatch), as submitit writes it:")
    print(script)
    print("# each task runs, in " + runs[0].cwd + ":")
    for i, run in enumerate(runs):
        prefix = f"#   array task {i}: " if len(runs) > 1 else "#   "
        print(prefix + " ".join(["wam-pipe run", run.pipeline, *run.overrides, "--output-dir", run.output_dir]))
    print("# environment of every task: the submitting shell's (sbatch exports it), plus torch.distributed's from "
          "Slurm's:")
    print(f"#   RANK=$SLURM_PROCID WORLD_SIZE={tasks} LOCAL_RANK=$SLURM_LOCALID "
          f"MASTER_ADDR=<first host of $SLURM_STEP_NODELIST> MASTER_PORT=<20000 + $SLURM_JOB_ID mod 20000>")
    for key in ("PYTHONPATH", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MASTER_PORT"):
        if key in os.environ:
            print(f"#   {key}={os.environ[key]}")
    print("# on preemption / near the time limit: USR2 -> the job requeues itself and resumes from the run dir")
    return 0
