"""Helpers shared by the sub-commands that take `PIPELINE.yaml [key=value ...]`."""

from __future__ import annotations

import argparse

from wam_pipe.config.overrides import OVERRIDES_HELP



def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline", metavar="PIPELINE.yaml", help="pipeline file")
    # default=[]: argparse otherwise counts an empty `nargs="*"` positional as required in its usage error
    parser.add_argument("overrides", nargs="*", default=[], metavar="key=value", help=OVERRIDES_HELP)


def check_overrides(parser: argparse.ArgumentParser, overrides: list[str]) -> None:
    """Reject `--flags` that landed among the overrides (argparse passes unknown options through nargs='*')."""
    for item in overrides:
        if item.startswith("--"):
            parser.error(f"unknown option {item}; overrides look like key=value")
