"""`riverbed scaling fit|predict|frontier`: scaling laws from run trees or CSV files.

    riverbed scaling fit runs/s1 runs/s2 runs/s3 --law chinchilla -o fit.json --plot fit.png
    riverbed scaling fit epoch.csv --drop-highest 5 --bootstrap 200
    riverbed scaling fit wandb.tsv --n-col model_size --loss-col eval/loss
    riverbed scaling fit runs/s1 --law data --points merge     # decay-free: PMA merges
    riverbed scaling predict fit.json --n 100M --d 2e9
    riverbed scaling frontier fit.json --flops 1e21,5e23

Imports of numpy/scipy/matplotlib stay inside the functions so `riverbed --help` is fast.
"""

from __future__ import annotations

import argparse
import functools
import json
import warnings
from pathlib import Path

from rich.console import Console
from rich.table import Table

from riverbed.checkpoints.outputs import check_output
from riverbed.cli.deprecated import add_deprecated
from riverbed.errors import ScalingError
from riverbed.io.progress import name_column
from riverbed.reports.scaling_plots import plot_fit
from riverbed.scaling import drop_highest, fit_law, frontier, load_fit, load_points, predict, save_fit
from riverbed.scaling.fit import FitWarning
from riverbed.scaling.merge_points import merge_points
from riverbed.scaling.points import Columns, concat
from riverbed.units import arg, parse_count, parse_float, parse_floats


_positive_float = arg(parse_float, positive=True)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("scaling", help="fit scaling laws, predict losses, the compute-optimal frontier")
    sub = p.add_subparsers(dest="scaling_cmd", metavar="CMD", required=True)

    f = sub.add_parser("fit", help="fit a law to run directories and/or CSV files", description="Fit L(N, D) = E + A/N^alpha + B/D^beta (chinchilla) or L(D) = E + B/D^beta (data) by summed Huber(1e-3) on log loss, L-BFGS from the full grid; bootstrap intervals.")
    f.add_argument("sources", metavar="SOURCE", nargs="+", help="riverbed run directories or CSV/TSV files (columns N, D or C = FLOPs, loss; common aliases such as params, tokens, flops, eval/loss are recognised)")
    cols = f.add_argument_group("CSV/TSV columns (default: found by name, case-insensitive)")
    cols.add_argument("--n-col", default=None, metavar="NAME", help="column of N, parameters (aliases: params, n_params, model_size, ...)")
    cols.add_argument("--d-col", default=None, metavar="NAME", help="column of D, training tokens (aliases: tokens, n_tokens, ...)")
    cols.add_argument("--c-col", default=None, metavar="NAME", help="column of C, training FLOPs, used where D is empty (D = C / 6N; aliases: flops, compute)")
    cols.add_argument("--loss-col", default=None, metavar="NAME", help="column of the held-out loss (aliases: loss, eval/loss, val_loss, ...)")
    f.add_argument("--law", choices=("chinchilla", "data"), default="chinchilla", help="law to fit (default chinchilla; data = one model size)")
    f.add_argument("--bootstrap", type=arg(parse_count), default=200, help="bootstrap resamples for the intervals (default 200; 0 = none)")
    f.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling (default 0)")
    f.add_argument("--ci", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    f.add_argument("--drop-highest", type=int, default=0, metavar="K", help="drop the K highest-loss points first (Epoch AI dropped 5)")
    f.add_argument("--points", choices=("finished", "merge"), default="finished", help="run points: finished models (decay/WSD-S/cosine ends; default) or decay-free PMA merges of main-branch checkpoints")
    f.add_argument("--merge-last", type=int, default=4, metavar="N", help="--points merge: checkpoints per merge (default 4)")
    f.add_argument("--merge-method", choices=("sma", "ema", "wma"), default="sma", help="--points merge: merge weights (default sma)")
    f.add_argument("--loss-reduction", choices=("sum", "mean"), default="sum", help="sum the Huber terms (default, as Chinchilla/Epoch) or average them (not recommended: L-BFGS stops early)")
    f.add_argument("--json", action="store_true", help="print the fit as JSON instead of a table")
    f.add_argument("-o", "--output", dest="out", default=None, help="write the fit as JSON (input of predict/frontier)")
    add_deprecated(f, "--out", new="-o/--output", dest="out")
    f.add_argument("--plot", default=None, help="write a PNG: loss vs D per model size with the fitted curves, and the frontier")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.set_defaults(func=run_fit)

    q = sub.add_parser("predict", help="loss of a fitted law at N parameters and D tokens, with an interval")
    q.add_argument("fit", metavar="FIT.json")
    q.add_argument("--n", type=_positive_float, default=None, help="parameters (needed by the chinchilla law)")
    q.add_argument("--d", type=_positive_float, required=True, help="training tokens")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=run_predict)

    c = sub.add_parser("frontier", help="compute-optimal N and D for a FLOP budget (C = 6ND)")
    c.add_argument("fit", metavar="FIT.json")
    c.add_argument("--flops", type=arg(parse_floats, positive=True), required=True, nargs="+",
                   help="training FLOPs budget(s): 1e21,5e23 or 1e21 5e23")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=run_frontier)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.6g}"


def print_fit(fit) -> None:
    console = Console()
    spec = fit.law_def
    ci = fit.intervals()
    t = Table(title=f"{spec.formula}\n({len(fit.points)} points, {fit.n_starts} starts)")
    t.add_column("param")
    t.add_column("value", justify="right")
    t.add_column(f"{fit.ci:.0%} CI" if ci else "CI", justify="right")
    for k, v in fit.params.items():
        lo_hi = ci.get(k)
        t.add_row(k, _fmt(v), f"[{_fmt(lo_hi[0])}, {_fmt(lo_hi[1])}]" if lo_hi else "-")
    console.print(t)
    # Plain prints below: rich would wrap long lines (row labels) at the console width.
    r = fit.residual_summary()
    print(
        f"objective {fit.objective:.10g} (Huber delta={fit.delta:g}, {fit.loss_reduction}); residuals log(L/L_hat): "
        f"rms {r['rms_log']:.4g}, mean |r| {r['mean_abs_log']:.4g}, max |r| {r['max_abs_log']:.4g} at {r['max_abs_label']}, "
        f"{r['within_delta']}/{r['n']} within delta"
    )
    des = fit.design()
    span = ", ".join(f"{k} {lo:.3g}..{hi:.3g}" for k, (lo, hi) in des["range"].items() if k in fit.law_def.features or k == "C" and "N" in fit.law_def.features)
    print(f"design: {des['rows']} rows, {des['distinct_points']} distinct points for {des['params']} parameters "
          f"({des['dof']} degrees of freedom); data range {span}")
    start = ", ".join(f"{k}={v:g}" for k, v in fit.best_start.items())
    print(f"best start: {start} ({fit.n_starts_at_optimum} of {fit.n_starts} starts reach this optimum)")
    if fit.dropped:
        print(f"dropped {len(fit.dropped)} highest-loss points: {', '.join(fit.dropped)}")
    if fit.bootstrap is not None:
        print(f"bootstrap: {len(fit.bootstrap)} resamples, seed {fit.bootstrap_seed}")
    for w in fit.warnings:
        print(f"warning: {w}")


def _without_fit_warnings(func):
    # The CLI prints every FitWarning itself (and puts it in the JSON): keep Python's copy off stderr.

    @functools.wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            return func(args)

    return wrapper


@_without_fit_warnings
def run_fit(args: argparse.Namespace) -> int:
    columns = Columns(n=args.n_col, d=args.d_col, c=args.c_col, loss=args.loss_col)
    for flag, path in (("-o/--output", args.out), ("--plot", args.plot)):
        if path:
            check_output(path, flag=flag, inputs=args.sources, error=ScalingError)

    studies = []
    if args.points == "merge":

        for s in args.sources:
            if not Path(s).is_dir():
                raise ScalingError(f"{s}: --points merge needs run directories (merges are computed from checkpoints), not a file")
        if columns.given():
            raise ScalingError("--n-col/--d-col/--c-col/--loss-col name CSV columns; --points merge reads run directories")
        studies = [merge_points(s, last=args.merge_last, method=args.merge_method) for s in args.sources]
        points = concat([st.merged for st in studies])
    else:
        points = load_points(args.sources, columns=columns)
    points, dropped = drop_highest(points, args.drop_highest)
    fit = fit_law(points, args.law, bootstrap=args.bootstrap, seed=args.seed, ci=args.ci, dropped=dropped, loss_reduction=args.loss_reduction, progress=not args.no_progress and not args.json)
    decay_fit = None
    if studies:
        decay_fit = fit_law(concat([st.decayed for st in studies]), args.law, loss_reduction=args.loss_reduction)
    if args.out:
        save_fit(fit, args.out)
    if args.plot:
        plot_fit(fit, args.plot)
    if args.json:
        doc = fit.to_json()
        if studies:
            doc["merge_rows"] = [dict(run=st.run, **r.to_json()) for st in studies for r in st.rows]
            doc["decay_fit_params"] = decay_fit.params
        print(json.dumps(doc, indent=2))
        return 0
    if studies:
        print_merge_rows(studies)
    print_fit(fit)
    if decay_fit is not None:
        print("law from merges vs law from the decay branches they stand in for:")
        for k, v in fit.params.items():
            d = decay_fit.params[k]
            print(f"  {k:6s} merges {v:12.6g}   decays {d:12.6g}   diff {v - d:+.4g} ({(v - d) / d:+.2%})")
    for what, path in (("fit", args.out), ("plot", args.plot)):
        if path:
            print(f"wrote {what} {path}")
    return 0


def print_merge_rows(studies) -> None:
    t = Table(title="PMA merges of main checkpoints vs decayed branches (held-out loss)")
    name_column(t, "run")
    name_column(t, "decay branch")
    for col in ("tokens", "decayed", "merge (steps)", "merge", "gap", "last ckpt"):
        t.add_column(col, justify="right")
    for st in studies:
        for r in st.rows:
            steps = ",".join(str(x) for x in r.merge_steps)
            t.add_row(Path(st.run).name, r.branch, f"{r.decayed_tokens:.3g}", f"{r.decayed_loss:.4f}", steps, f"{r.merge_loss:.4f}", f"{r.gap:+.4f}", f"{r.last_loss:.4f}")
    Console().print(t)


@_without_fit_warnings
def run_predict(args: argparse.Namespace) -> int:
    fit = load_fit(args.fit)
    est = predict(fit, args.n, args.d)
    if args.json:
        print(json.dumps({"law": fit.law, "N": args.n, "D": args.d, "loss": est.to_json(), "ci": fit.ci, "warnings": list(est.warnings)}))
        return 0
    where = f"N={args.n:.4g}, D={args.d:.4g}" if fit.law == "chinchilla" else f"D={args.d:.4g}"
    interval = f"  ({fit.ci:.0%} CI {est.lo:.5g} .. {est.hi:.5g})" if est.lo is not None else "  (no bootstrap: no interval)"
    print(f"predicted loss at {where}: {est.value:.5g}{interval}")
    for w in est.warnings:
        print(f"warning: {w}")
    return 0


@_without_fit_warnings
def run_frontier(args: argparse.Namespace) -> int:
    fit = load_fit(args.fit)
    rows = [frontier(fit, c) for group in args.flops for c in group]
    if args.json:
        print(json.dumps({"law": fit.law, "ci": fit.ci, "frontier": [r.to_json() for r in rows]}))
        return 0

    t = Table(title=f"compute-optimal frontier (C = 6ND; {fit.ci:.0%} CI)" if fit.bootstrap is not None else "compute-optimal frontier (C = 6ND)")
    for col in ("FLOPs", "N_opt", "D_opt", "D/N", "loss"):
        t.add_column(col, justify="right")

    def cell(e) -> str:
        return f"{e.value:.4g}" + (f" [{e.lo:.3g}, {e.hi:.3g}]" if e.lo is not None else "")

    for r in rows:
        t.add_row(f"{r.flops:.3g}", cell(r.n_opt), cell(r.d_opt), f"{r.tokens_per_param:.3g}", cell(r.loss))
    Console().print(t)
    for r in rows:
        for w in r.warnings:
            print(f"warning: C={r.flops:.3g}: {w}")
    return 0
