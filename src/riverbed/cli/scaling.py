"""`riverbed scaling fit|predict|frontier`: scaling laws from run trees or CSV files.

    riverbed scaling fit runs/s1 runs/s2 runs/s3 --law chinchilla -o fit.json --plot fit.png
    riverbed scaling fit epoch.csv --drop-highest 5 --bootstrap 200
    riverbed scaling fit runs/s1 --law data --points merge     # decay-free: PMA merges
    riverbed scaling predict fit.json --n 1e8 --d 2e9
    riverbed scaling frontier fit.json --flops 1e21

Imports of numpy/scipy/matplotlib stay inside the functions so ``riverbed --help`` is fast.
"""

from __future__ import annotations

import argparse
import json
import sys


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number like 1e8, got {text!r}") from None
    return v


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("scaling", help="fit scaling laws, predict losses, the compute-optimal frontier")
    sub = p.add_subparsers(dest="scaling_cmd", metavar="CMD", required=True)

    f = sub.add_parser("fit", help="fit a law to run directories and/or CSV files", description="Fit L(N, D) = E + A/N^alpha + B/D^beta (chinchilla) or L(D) = E + B/D^beta (data) by summed Huber(1e-3) on log loss, L-BFGS from the full grid; bootstrap intervals.")
    f.add_argument("sources", metavar="SOURCE", nargs="+", help="riverbed run directories or CSV files (columns N, D or C = FLOPs, loss)")
    f.add_argument("--law", choices=("chinchilla", "data"), default="chinchilla", help="law to fit (default chinchilla; data = one model size)")
    f.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the intervals (default 200; 0 = none)")
    f.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling (default 0)")
    f.add_argument("--ci", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    f.add_argument("--drop-highest", type=int, default=0, metavar="K", help="drop the K highest-loss points first (Epoch AI dropped 5)")
    f.add_argument("--points", choices=("finished", "merge"), default="finished", help="run points: finished models (decay/WSD-S/cosine ends; default) or decay-free PMA merges of main-branch checkpoints")
    f.add_argument("--merge-last", type=int, default=4, metavar="N", help="--points merge: checkpoints per merge (default 4)")
    f.add_argument("--merge-method", choices=("sma", "ema", "wma"), default="sma", help="--points merge: merge weights (default sma)")
    f.add_argument("--loss-reduction", choices=("sum", "mean"), default="sum", help="sum the Huber terms (default, as Chinchilla/Epoch) or average them (not recommended: L-BFGS stops early)")
    f.add_argument("--json", action="store_true", help="print the fit as JSON instead of a table")
    f.add_argument("-o", "--out", default=None, help="write the fit as JSON (input of predict/frontier)")
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
    c.add_argument("--flops", type=_positive_float, required=True, nargs="+", help="training FLOPs budget(s)")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=run_frontier)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.6g}"


def print_fit(fit) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    spec = fit.law_def
    ci = fit.intervals()
    t = Table(title=f"{spec.formula}  ({len(fit.points)} points, {fit.n_starts} starts)")
    t.add_column("param")
    t.add_column("value", justify="right")
    t.add_column(f"{fit.ci:.0%} CI" if ci else "CI", justify="right")
    for k, v in fit.params.items():
        lo_hi = ci.get(k)
        t.add_row(k, _fmt(v), f"[{_fmt(lo_hi[0])}, {_fmt(lo_hi[1])}]" if lo_hi else "-")
    console.print(t)
    r = fit.residual_summary()
    console.print(
        f"objective {fit.objective:.10g} (Huber delta={fit.delta:g}, {fit.loss_reduction}); residuals log(L/L_hat): "
        f"rms {r['rms_log']:.4g}, mean |r| {r['mean_abs_log']:.4g}, max |r| {r['max_abs_log']:.4g} at {r['max_abs_label']}, "
        f"{r['within_delta']}/{r['n']} within delta"
    )
    start = ", ".join(f"{k}={v:g}" for k, v in fit.best_start.items())
    console.print(f"best start: {start} ({fit.n_starts_at_optimum} of {fit.n_starts} starts reach this optimum)")
    if fit.dropped:
        console.print(f"dropped {len(fit.dropped)} highest-loss points: {', '.join(fit.dropped)}")
    if fit.bootstrap is not None:
        console.print(f"bootstrap: {len(fit.bootstrap)} resamples, seed {fit.bootstrap_seed}")
    for w in fit.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")


def run_fit(args: argparse.Namespace) -> int:
    from riverbed.scaling import drop_highest, fit_law, load_points, save_fit
    from riverbed.scaling.plot import plot_fit

    merge_options = {"last": args.merge_last, "method": args.merge_method} if args.points == "merge" else {}
    if args.points == "merge" and not args.json:
        print(f"decay-free points: {args.merge_method} merges of the last {args.merge_last} main checkpoints before each decay branch's fork", file=sys.stderr)
    points = load_points(args.sources, points=args.points, **merge_options)
    points, dropped = drop_highest(points, args.drop_highest)
    fit = fit_law(points, args.law, bootstrap=args.bootstrap, seed=args.seed, ci=args.ci, dropped=dropped, loss_reduction=args.loss_reduction, progress=not args.no_progress and not args.json)
    if args.out:
        save_fit(fit, args.out)
    if args.plot:
        plot_fit(fit, args.plot)
    if args.json:
        print(json.dumps(fit.to_json(), indent=2))
    else:
        print_fit(fit)
        for what, path in (("fit", args.out), ("plot", args.plot)):
            if path:
                print(f"wrote {what} {path}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from riverbed.scaling import load_fit, predict

    fit = load_fit(args.fit)
    est = predict(fit, args.n, args.d)
    if args.json:
        print(json.dumps({"law": fit.law, "N": args.n, "D": args.d, "loss": est.to_json(), "ci": fit.ci}))
        return 0
    where = f"N={args.n:.4g}, D={args.d:.4g}" if fit.law == "chinchilla" else f"D={args.d:.4g}"
    interval = f"  ({fit.ci:.0%} CI {est.lo:.5g} .. {est.hi:.5g})" if est.lo is not None else "  (no bootstrap: no interval)"
    print(f"predicted loss at {where}: {est.value:.5g}{interval}")
    return 0


def run_frontier(args: argparse.Namespace) -> int:
    from riverbed.scaling import frontier, load_fit

    fit = load_fit(args.fit)
    rows = [frontier(fit, c) for c in args.flops]
    if args.json:
        print(json.dumps({"law": fit.law, "ci": fit.ci, "frontier": [r.to_json() for r in rows]}))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"compute-optimal frontier (C = 6ND; {fit.ci:.0%} CI)" if fit.bootstrap is not None else "compute-optimal frontier (C = 6ND)")
    for col in ("FLOPs", "N_opt", "D_opt", "D/N", "loss"):
        t.add_column(col, justify="right")

    def cell(e) -> str:
        return f"{e.value:.4g}" + (f" [{e.lo:.3g}, {e.hi:.3g}]" if e.lo is not None else "")

    for r in rows:
        t.add_row(f"{r.flops:.3g}", cell(r.n_opt), cell(r.d_opt), f"{r.tokens_per_param:.3g}", cell(r.loss))
    Console().print(t)
    return 0
