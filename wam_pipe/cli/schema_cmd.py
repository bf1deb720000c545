"""`wam-pipe schema`: print the JSON Schema of a pipeline file (editors use it to complete and check keys).

The repository's schemas/pipeline.schema.json is this command's output; shipped pipelines point to it with
`# yaml-language-server: $schema=../schemas/pipeline.schema.json`.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("schema", help="print the JSON Schema of pipeline files", description=__doc__)
    parser.add_argument("--out", metavar="FILE", help="write to FILE instead of printing")
    parser.set_defaults(func=_schema)


def render_schema() -> str:
    import json

    from wam_pipe.config.schema import pipeline_schema

    return json.dumps(pipeline_schema(), indent=2, sort_keys=False) + "\n"


def _schema(args: argparse.Namespace) -> int:
    text = render_schema()
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        print(text, end="")
    return 0
