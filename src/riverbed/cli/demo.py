"""`riverbed demo [--out DIR] [--quick]`: a WSD main branch, a decay branch per budget, table + PNG.

Trains a ~0.8M-parameter model on the embedded corpus (about 3 minutes on 2 CPU cores), forks a
1-sqrt decay branch at 80 % of each of four budgets, prints budget -> final held-out loss ->
tokens (with the undecayed main branch for contrast) and writes DIR/branches.png (learning
rate and held-out loss per branch against tokens). --quick is a seconds-long version with a
smaller model and three budgets.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from riverbed.checkpoints import layout
from riverbed.checkpoints.outputs import check_output
from riverbed.experiments.demo import FULL, QUICK, print_result, run_demo


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="train a tiny WSD run tree (main + a decay branch per budget), print a table, plot it",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("demo-run"), help="output directory: the run tree and its plot (default: ./demo-run)")
    p.add_argument("--quick", action="store_true",
                   help=f"a seconds-long version (tiny model, {len(QUICK.budgets)} budgets instead of {len(FULL.budgets)})")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not (args.out / layout.MANIFEST).is_file():  # a demo run already there is resumed
        check_output(args.out, flag="--out", directory=True, inside_run=False)
    result = run_demo(args.out, QUICK if args.quick else FULL, progress=not args.no_progress)
    print_result(result)
    # One more command from the demo to a page people can open and share.
    print(f"next: riverbed report {result.run_dir}   (writes {result.run_dir / 'report.html'}, one self-contained HTML page)")
    return 0
