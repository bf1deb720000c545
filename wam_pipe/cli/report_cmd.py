"""`wam-pipe report RUN_DIR [--compare RUN_DIR2]`: the latest evaluation of a run as a compact table.

Reads `RUN_DIR/eval/metrics.json` (written by the eval stage). By default one line per augmentation setting,
averaged over the masks, plus the multi-watermark table when the run has one; --full prints every mask x setting.
--compare puts a second run's numbers side by side with the difference (B - A).

Examples:
  wam-pipe report runs/quickstart
  wam-pipe report runs/pretrain --compare runs/finetune
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("report", help="print the latest evaluation of a run (or compare two runs)",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory (or its eval/metrics.json)")
    parser.add_argument("--compare", metavar="RUN_DIR2", help="a second run to show side by side")
    parser.add_argument("--full", action="store_true", help="every mask x setting row instead of per-setting means")
    parser.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from wam_pipe.eval.outputs import read_metrics
    from wam_pipe.eval.summary import compare_lines, report_lines

    first = read_metrics(args.run_dir)
    if args.compare:
        lines = compare_lines(first, read_metrics(args.compare), args.run_dir, args.compare)
    else:
        lines = report_lines(first, args.run_dir, full=args.full)
    print("\n".join(lines))
    return 0
