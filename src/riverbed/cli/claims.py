"""`riverbed claims [--quick] [--seeds K] [--json]`: the seed claims re-measured at small scale.

Trains a small study per seed (the 103K-parameter tiny model on the embedded corpus: a WSD main
branch with 1-sqrt and linear decay branches, the same at a third of the LR, a cosine run, and
SMA / EMA / WMA merges of the main branch's checkpoints), then prints one row per claim: the
claim, its source, what was measured (mean and standard error over seeds), the verdict (holds /
does not hold / inconclusive) and the rule that decided it. A claim that does not hold at this
scale is reported as such, with its numbers. ``--quick`` is the CI size.
"""

from __future__ import annotations

import argparse
import json
import math

from riverbed.cli.executor_args import add_executor_arguments, executor_from_args


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("claims", help="re-measure the seed claims (PMA, WSD vs cosine, decay shapes, ...) over seeds",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the CI size (200-step runs instead of 400)")
    p.add_argument("--seeds", type=int, default=3, metavar="K", help="seeds per claim (default 3)")
    p.add_argument("--json", action="store_true",
                   help='print {"claims": [{"claim", "source", "mean", "stderr", "seeds", "verdict", "rule"}, ...]}')
    add_executor_arguments(p, what="seed")
    p.set_defaults(func=run)


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def run(args: argparse.Namespace) -> int:
    from riverbed.claims import runner

    study = runner.QUICK if args.quick else runner.FULL
    if not args.json:
        print(f"riverbed claims: {args.seeds} seed(s) of a {study.steps}-step study "
              f"({'--quick' if args.quick else 'full'}); each seed trains {3 * study.steps + 3 * study.decay} steps")
    results = runner.run_claims(study, args.seeds, executor=executor_from_args(args),
                                on_seed=None if args.json else (lambda s: print(f"  seed {s} measured", flush=True)))
    if args.json:
        rows = [{k: (_num(v) if isinstance(v, float) else v) for k, v in r.to_json().items()} for r in results]
        print(json.dumps({"claims": rows, "not_measured": list(runner.NOT_MEASURED)}, indent=2, allow_nan=False))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title="seed claims at small scale (mean ± standard error over seeds)", show_lines=True)
    t.add_column("claim (source)", ratio=3)
    t.add_column("measured per seed", ratio=4)
    t.add_column("threshold", justify="right", no_wrap=True)
    t.add_column("mean ± se", justify="right", no_wrap=True)
    t.add_column("verdict", no_wrap=True)
    colour = {"holds": "green", "does not hold": "red", "inconclusive": "yellow"}
    thresholds = {c.claim: c.threshold for c in runner.CLAIMS}
    for r in results:
        se = "?" if r.stderr is None else f"{r.stderr:.4f}"
        t.add_row(f"{r.claim}\n[dim]{r.source}[/dim]", r.measured, f"{thresholds[r.claim]:+g}", f"{r.mean:+.4f} ± {se}",
                  f"[{colour[r.verdict]}]{r.verdict}[/]")
    c = Console()
    c.print(t)
    c.print("rule: holds if mean - 2 se > threshold; does not hold if mean + 2 se < threshold; inconclusive "
            "otherwise (and with one seed)")
    c.print("not measured here: " + "; ".join(runner.NOT_MEASURED))
    return 0
