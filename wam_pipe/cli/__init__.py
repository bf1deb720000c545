"""The `wam-pipe` command line: one sub-command per module in this package.

Exit codes: 0 success, 2 user or config error (one line each, no traceback), 1 runtime failure.
`--debug` (before the sub-command) shows the Python traceback of any error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import traceback

from wam_pipe import __version__
from wam_pipe.core.disk_full import is_no_space, no_space_message
from wam_pipe.core.errors import UserError

# Sub-commands live in `wam_pipe/cli/<name>_cmd.py`; each exposes `register(subparsers)` and sets `func` on its
# parser. They are discovered, and listed in `--help` in this order (others after, alphabetically).
_HELP_ORDER = ["run", "submit", "validate", "show", "ls", "schema", "shard", "data", "bench", "report", "embed",
               "detect", "calibrate", "export", "import_wam", "export_wam"]


def _command_modules() -> list[str]:
    import wam_pipe.cli as package

    found = [m.name[: -len("_cmd")] for m in pkgutil.iter_modules(package.__path__) if m.name.endswith("_cmd")]
    return sorted(found, key=lambda name: (_HELP_ORDER.index(name) if name in _HELP_ORDER else len(_HELP_ORDER), name))


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors already; keep its message to one line plus the usage."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wam-pipe", description="Train and use Watermark-Anything-style models from YAML pipelines.")
    parser.add_argument("--version", action="version", version=f"wam-pipe {__version__}")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in _command_modules():
        module = importlib.import_module(f"wam_pipe.cli.{name}_cmd")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    # Overrides may come before or after options (`run P.yaml --output-dir D k=v`): argparse stops filling a
    # positional list at the first option, so the leftovers that look like overrides are appended here.
    args, extras = parser.parse_known_args(argv)
    if extras:
        if hasattr(args, "overrides") and not any(e.startswith("-") for e in extras):
            args.overrides = [*args.overrides, *extras]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
    try:
        result = args.func(args)
        sys.stdout.flush()  # inside the try: a closed pipe surfaces here, not at interpreter exit
        return int(result or 0)
    except UserError as err:
        if args.debug:
            traceback.print_exc()
        for line in err.lines:
            print(line, file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`wam-pipe ls | head`): stop quietly, as a program killed by SIGPIPE
        # would (exit 141), and keep Python from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as err:
        if not is_no_space(err):  # a full disk is the environment's fault, in one line; anything else: traceback
            raise
        print(no_space_message(None, err), file=sys.stderr)
        return 1
