"""`wam-pipe ls [CATEGORY]`: the public components a pipeline can name, with a one-line description each.

Use the printed path as `_target_:` in a pipeline; `wam-pipe show PIPELINE --defaults` lists every argument.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("ls", help="list the components (stages, models, augmentations, losses, optim)",
                            description=__doc__)
    parser.add_argument("category", nargs="?", help="only this category (stages, models, augmentations, ...)")
    parser.set_defaults(func=_ls)


def _ls(args: argparse.Namespace) -> int:
    from wam_pipe.config.catalogue import components
    from wam_pipe.core.errors import UserError

    found = components()
    categories = list(dict.fromkeys(c.category for c in found))
    if args.category and args.category not in categories:
        raise UserError(f"ls: unknown category '{args.category}'; categories are {', '.join(categories)}")
    width = max(len(c.target) for c in found)
    for category in categories:
        if args.category and category != args.category:
            continue
        print(f"{category}:")
        for c in found:
            if c.category == category:
                print(f"  {c.target:<{width}}  {c.summary}")
    return 0
