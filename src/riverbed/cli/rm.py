"""`riverbed rm RUN BRANCH [--recursive]`: remove a branch from a run tree.

Removes the branch's directory (checkpoints, metrics) and its entry in run.json. The main
branch is never removed; a branch that others were forked from is refused unless
``--recursive``, which removes those descendants too. A branch being trained is refused.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from riverbed.runs import Run


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("rm", help="remove a branch (its checkpoints and its run.json entry)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="run directory")
    p.add_argument("branch", help="branch to remove")
    p.add_argument("-r", "--recursive", action="store_true", help="also remove the branches forked from it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    removed = Run.open(args.run).delete_branch(args.branch, recursive=args.recursive)
    for name in removed:
        print(f"removed branch {name}")
    return 0
