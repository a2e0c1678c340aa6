"""`riverbed ls RUN [--json] [--plot tree.png]`: the run tree and its compute accounting."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from rich.console import Console

from riverbed.checkpoints.outputs import check_output
from riverbed.errors import RunError
from riverbed.runs import Run
from riverbed.runs.view import as_json, render


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("ls", help="show a run tree: branches, fork points, tokens, FLOPs, losses, compute accounting")
    p.add_argument("run", help="run directory")
    p.add_argument("--json", action="store_true", help="print the manifest, finished points and accounting as JSON")
    p.add_argument("--plot", default=None, metavar="FILE",
                   help="also draw the tree: LR and held-out loss of every branch against tokens (.png, .svg or .pdf)")
    p.set_defaults(func=run)


def _finite(obj):
    # JSON has no NaN/inf: print null (the percentages of an empty run are undefined).
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _plot(r, out: str) -> None:
    check_output(out, flag="--plot", suffixes=(".png", ".svg", ".pdf"), error=RunError)
    from riverbed.reports.run_plots import plot_run  # lazy: the reports package (numpy, scaling, figures) only for --plot

    plot_run(r.path, Path(out))


def run(args: argparse.Namespace) -> int:
    r = Run.open(args.run)
    if args.plot is not None:
        _plot(r, args.plot)
    if args.json:
        print(json.dumps(_finite(as_json(r)), indent=2))
        return 0

    Console().print(render(r))
    return 0
