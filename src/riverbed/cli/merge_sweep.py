"""`riverbed merge-sweep RUN [--at STEP] --last 2,4,8 --every V1,V2 [--method sma,ema,wma] [--plot P] [--json]`.

Which merge recipe should this run use? Every recipe of the grid -- method x N (``--last``: how
many checkpoints) x V (``--every``: at least how many steps apart) -- is built in memory from
RUN's checkpoints up to ``--at`` (default: the newest), with the selection of ``riverbed merge
--run`` and the arithmetic of ``riverbed merge``, and evaluated on the run's held-out data with
the evaluation of ``riverbed eval``: each cell is the loss those two commands would print. A
table (and ``--plot``: a heatmap per method) sets them beside the checkpoint at STEP and, where a
decay branch was forked at STEP, the decayed loss. EMA uses ``--alpha`` (default 0.2); WMA
weighs by position. ``--json``: ``cells`` (method, N, V, eval_loss, steps, weights) and ``best``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from riverbed.checkpoints.outputs import check_output
from riverbed.errors import MergeError
from riverbed.units import arg, parse_count, parse_counts


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("merge-sweep", help="evaluate a grid of merge recipes (method x N x V) on a run's held-out data",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, metavar="RUN", help="a riverbed run directory")
    p.add_argument("--at", type=arg(parse_count), default=None, metavar="STEP", help="the step the merges end at (default: the newest checkpoint)")
    p.add_argument("--last", type=arg(parse_counts), required=True, metavar="N1,N2", help="numbers of checkpoints N, e.g. 2,4,8")
    p.add_argument("--every", type=arg(parse_counts), required=True, metavar="V1,V2", help="spacings V in steps, e.g. 100,200 or 1K,2K")
    p.add_argument("--method", default="sma,ema,wma", help="methods, comma-separated among sma, ema, wma (default all three)")
    p.add_argument("--alpha", type=float, default=0.2, help="EMA alpha (default 0.2, as in the PMA paper)")
    p.add_argument("--branch", default="main", help="the branch whose checkpoints are merged (default main)")
    p.add_argument("--plot", type=Path, default=None, metavar="P", help="write the heatmap (PNG, SVG or PDF) to P")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from riverbed.training.merge_sweep import merge_sweep  # lazy: loads torch; every verb module is imported for --help

    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    if args.plot is not None:  # the one output check (not into the run it reads, nor any checkpoint)
        check_output(args.plot, flag="--plot", inputs=[args.run], suffixes=(".png", ".svg", ".pdf"), error=MergeError)
    result = merge_sweep(args.run, last=args.last, every=args.every, methods=methods, at=args.at, alpha=args.alpha,
                         branch=args.branch, progress=not args.no_progress)
    if args.plot is not None:
        from riverbed.reports.sweep_plot import plot_merge_sweep  # lazy: matplotlib

        plot_merge_sweep(result, args.plot)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, allow_nan=False))
        return 0
    vs = sorted({c.every for c in result.cells})
    best = result.best
    t = Table(title=f"held-out loss of merges ending at step {result.at} ({result.run}, branch {result.branch})")
    t.add_column("method")
    t.add_column("N", justify="right")
    for v in vs:
        t.add_column(f"V={v}", justify="right")
    for m in dict.fromkeys(c.method for c in result.cells):
        for n in sorted({c.n for c in result.cells}):
            row = []
            for v in vs:
                (c,) = [c for c in result.cells if (c.method, c.n, c.every) == (m, n, v)]
                text = "n/a" if c.eval_loss is None else f"{c.eval_loss:.4f}"
                row.append(f"[bold green]{text}[/]" if c is best else text)
            t.add_row(m + (f" a={result.alpha:g}" if m == "ema" else ""), str(n), *row)
    con = Console()
    con.print(t)
    con.print(f"last checkpoint (step {result.at}): {result.last_loss:.4f}")
    if result.decayed_loss is not None:
        con.print(f"decayed ({result.decayed_branch}, forked at {result.at}): {result.decayed_loss:.4f}")
    if best is not None:
        con.print(f"best: {best.method} N={best.n} V={best.every} (steps {', '.join(map(str, best.steps))}): {best.eval_loss:.4f} "
                  f"({best.eval_loss - result.last_loss:+.4f} vs the last checkpoint)")
    if any(c.eval_loss is None for c in result.cells):
        con.print("n/a: fewer than N checkpoints V apart up to that step")
    if args.plot is not None:
        con.print(f"wrote {args.plot}")
    return 0
