"""`wam-pipe bench load|step ...`: benchmarks that run their arms side by side in one process and report ratios.

Each benchmark lives in `wam_pipe/bench/<name>_bench.py` and exposes `add_arguments(parser)` and `run(args) -> int`; modules import torch & co. inside `run`, so
building the CLI parser stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util

_BENCHMARKS = {
    "load": "data loading: per-file COCO vs pre-resized files vs shards, and the decode ceiling",
    "step": "training step: images/s with data in memory and with the real loader, ablation of each optimisation",
}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="run a benchmark (load, step)", description=__doc__)
    which = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    which.required = True
    for name, help_text in _BENCHMARKS.items():
        if importlib.util.find_spec(f"wam_pipe.bench.{name}_bench") is None:
            continue
        module = importlib.import_module(f"wam_pipe.bench.{name}_bench")
        bench_parser = which.add_parser(name, help=help_text, description=module.__doc__,
                                        formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(bench_parser)
        bench_parser.set_defaults(func=module.run)
