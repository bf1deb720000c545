"""`wam-pipe report RUN_DIR [--compare RUN_DIR2]`: the latest evaluation of a run as a compact table.

Reads `RUN_DIR/eval/metrics.json` (written by the eval stage). By default one line per augmentation setting,
averaged over the masks, plus the multi-watermark table when the run has one; --full prints every mask x setting.
--compare puts a second run's numbers side by side with the difference (B - A).

On a sweep dir (`runs/<name>/sweep-<id>`, made by `wam-pipe run --multirun`): one table of all points, the swept
values as columns and the chosen metrics (--metrics, default bit_acc,word_acc,miou,psnr) as rows, the best of each
row marked `*`; and `sweep.png` in the sweep dir (each metric against the swept value).

Examples:
  wam-pipe report runs/quickstart
  wam-pipe report runs/pretrain --compare runs/finetune
  wam-pipe report runs/quickstart/sweep-64c8ee09 --metrics bit_acc,miou
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("report", help="print the latest evaluation of a run (or compare two runs)",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory (or its eval/metrics.json)")
    parser.add_argument("--compare", metavar="RUN_DIR2", help="a second run to show side by side")
    parser.add_argument("--full", action="store_true", help="every mask x setting row instead of per-setting means")
    parser.add_argument("--metrics", metavar="M1,M2",
                        help="sweep dir only: the summary metrics to show (default bit_acc,word_acc,miou,psnr)")
    parser.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from wam_pipe.runner.sweep import SWEEP_FILE

    if (Path(args.run_dir) / SWEEP_FILE).is_file():
        return _report_sweep(args)
    from wam_pipe.eval.outputs import read_metrics
    from wam_pipe.eval.summary import compare_lines, report_lines

    first = read_metrics(args.run_dir)
    if args.compare:
        lines = compare_lines(first, read_metrics(args.compare), args.run_dir, args.compare)
    else:
        lines = report_lines(first, args.run_dir, full=args.full)
    print("\n".join(lines))
    return 0


def _report_sweep(args: argparse.Namespace) -> int:
    from pathlib import Path

    from wam_pipe.core.errors import UserError
    from wam_pipe.eval.sweep_table import SWEEP_METRICS, plot_sweep, sweep_lines
    from wam_pipe.runner.sweep import point_summaries, read_sweep_file

    if args.compare or args.full:
        raise UserError(f"{args.run_dir}: a sweep dir; --compare and --full apply to one run (report {args.run_dir}/0)")
    data = read_sweep_file(args.run_dir)
    metrics = [m for m in (args.metrics or ",".join(SWEEP_METRICS)).split(",") if m]
    summaries = point_summaries(args.run_dir, data)
    known = {key for summary in summaries if summary for key in summary}
    unknown = [m for m in metrics if known and m not in known]
    if unknown:
        raise UserError(f"--metrics: no metric {', '.join(unknown)} in the points' summaries; "
                        f"choose from {', '.join(sorted(known))}")
    values = [point["values"] for point in data["points"]]
    print(f"sweep {data.get('id')} of {data.get('pipeline')}: {len(values)} points")
    print("\n".join(sweep_lines(data["swept"], values, summaries, metrics)))
    if any(summaries):
        figure = plot_sweep(data["swept"], values, summaries, Path(args.run_dir) / "sweep.png", metrics)
        print(f"wrote {figure}")
    return 0
