"""`riverbed report RUN [--out report.html]` / `riverbed report --compare RUN1 RUN2 ... --out cmp.html`.

One self-contained HTML page (images inline, no script, nothing fetched when it is opened):
the LR schedule of every branch, held-out loss against tokens for the main branch, each decay
branch, WSD-S decayed checkpoints and PMA merges, the compute accounting, spike-guard events, a
scaling fit when the run holds enough finished points, the config and software versions. The
figures are also written as PNG beside the HTML (``<stem>-loss.png``, ...). ``--compare``
overlays several runs (e.g. WSD vs WSD-S vs cosine) on tokens and on FLOPs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from riverbed.errors import ReportError
from riverbed.reports import build_compare, build_report


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="write a self-contained HTML report of a run (or compare several runs)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", type=Path, default=None, help="run directory")
    p.add_argument("--compare", nargs="+", type=Path, default=None, metavar="RUN",
                   help="overlay these runs in one page (needs --out)")
    p.add_argument("--out", type=Path, default=None,
                   help="HTML file to write (default RUN/report.html; required with --compare)")
    p.add_argument("--no-fit", action="store_true", help="skip the scaling fit of the finished points")
    p.add_argument("--no-predictor", action="store_true", help="skip the loss-law section (fit, predictions, leave-one-out)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.compare is not None:
        if args.out is None:
            raise ReportError("--compare needs --out FILE.html")
        runs = ([args.run] if args.run is not None else []) + list(args.compare)
        rep = build_compare(runs, args.out)
    else:
        if args.run is None:
            raise ReportError("riverbed report needs a run directory (or --compare RUN1 RUN2 ...)")
        rep = build_report(args.run, args.out, fit=not args.no_fit, predictor=not args.no_predictor)
    print(f"report: {rep.html}")
    for img in rep.images:
        print(f"  figure: {img}")
    return 0
