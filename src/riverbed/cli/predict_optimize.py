"""`riverbed predict optimize | when`: the LR schedule a fitted law predicts to end lowest; when a decay reaches a loss.

    riverbed predict optimize law.json --steps 2000 --warmup-steps 100 --peak-lr 3e-3 --min-lr 3e-4 -o sched.toml
    cat base.toml sched.toml > optimized.toml && riverbed train optimized.toml   # base.toml without a [schedule]
    riverbed predict when runs/tiny --target 2.05 [--shape 1-sqrt] [--decay-fraction 0.2] [--json]

The predictor loads inside the command so ``riverbed --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from riverbed.checkpoints.outputs import check_output
from riverbed.io.atomic import write_text
from riverbed.toml_writer import dumps_toml
from riverbed.units import arg, parse_count


def add_optimize_parsers(sub: argparse._SubParsersAction) -> None:
    o = sub.add_parser("optimize", help="the LR schedule (never rising after warmup) with the lowest predicted final loss")
    o.add_argument("law", metavar="LAW.json", help="a fit from `riverbed predict fit`")
    o.add_argument("--steps", type=arg(parse_count, positive=True), required=True, help="total optimizer steps")
    o.add_argument("--warmup-steps", type=arg(parse_count), default=0, help="linear warmup to the peak (default 0)")
    o.add_argument("--peak-lr", type=float, required=True, help="the LR after the warmup (the schedule never exceeds it)")
    o.add_argument("--min-lr", type=float, default=0.0, help="the LR never goes below this (default 0)")
    o.add_argument("--knots", type=int, default=64, help="free points of the schedule after the warmup (default 64)")
    o.add_argument("--json", action="store_true", help="print final_loss (with interval), lr, schedule and baselines as JSON")
    o.add_argument("-o", "--output", dest="out", default=None, metavar="PATH",
                   help="write the schedule spec: a [schedule] table (.toml) or the JSON above (.json)")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    o.add_argument("--force", action="store_true", help="use a law file whose fit was unreliable (the result is marked forced)")
    o.set_defaults(func=run_optimize)

    w = sub.add_parser("when", help="at which budget (steps, tokens, FLOPs) a decay of the run reaches a target loss")
    w.add_argument("run", metavar="RUN")
    w.add_argument("--target", type=float, required=True, help="the held-out loss to reach")
    w.add_argument("--shape", default="1-sqrt", help="decay shape (default 1-sqrt)")
    w.add_argument("--decay-fraction", type=float, default=0.2, help="decay length as a fraction of the budget (default 0.2)")
    w.add_argument("--horizon", type=arg(parse_count, positive=True), default=None,
                   help="search budgets up to this many steps (default 10x the main branch's trained steps)")
    w.add_argument("--law", default=None, help="law to fit (default: riverbed predict's default)")
    w.add_argument("--fit", default=None, metavar="LAW.json", help="use this fit instead of fitting the run now")
    w.add_argument("--bootstrap", type=arg(parse_count), default=20, help="bootstrap refits for the interval (default 20)")
    w.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    w.add_argument("--json", action="store_true", help="print JSON")
    w.add_argument("--no-progress", action="store_true", help="no progress bar")
    w.add_argument("--force", action="store_true", help="use a fit its diagnostics call unreliable")
    w.set_defaults(func=run_when)


#: How an answer from a fit kept by --force says so (the wording of `riverbed predict fit`).
FORCED = "FORCED (unreliable fit kept by --force)"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=1, allow_nan=False) + "\n"


def _law_file(path: str) -> Any:
    from riverbed.predict import LawFit, PredictError  # lazy: loads scipy; every verb module is imported for `riverbed --help`

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PredictError(f"{path}: cannot read the law file ({exc.strerror})") from None
    return LawFit.from_json(text, where=str(path))


def run_when(args: argparse.Namespace) -> int:
    from riverbed.predict.laws import DEFAULT_LAW  # lazy: as above
    from riverbed.predict.when import decay_reaching  # lazy: as above

    fit = _law_file(args.fit) if args.fit else None
    w = decay_reaching(args.run, args.target, law=args.law or DEFAULT_LAW, fit=fit, shape=args.shape,
                       decay_fraction=args.decay_fraction, horizon=args.horizon, bootstrap=args.bootstrap, seed=args.seed,
                       progress=not (args.no_progress or args.json), force=args.force)
    if args.json:
        print(_dumps(w.to_dict()), end="")
        return 0
    if w.forced:
        print(FORCED)
    if w.end is None:
        print(f"{w.law} law: a {w.shape} decay over {w.decay_fraction:.0%} of the budget does not reach {w.target:g} "
              f"within {w.horizon} steps (--horizon)")
        return 0
    when = "now (already trained)" if w.fork <= w.trained else f"after {w.fork - w.trained} more main-branch steps"
    spread = (f"[{w.end_lo}, {w.end_hi}]" if w.end_hi is not None else f"[{w.end_lo}, beyond the horizon]") if w.boot else "-"
    print(f"{w.law} law: a {w.shape} decay of {w.end - w.fork} steps forked at step {w.fork} ({when}) reaches "
          f"{w.loss:.4f} <= {w.target:g} at step {w.end}: {w.tokens:,} tokens, {w.flops:.3e} FLOPs")
    print(f"budget over {w.boot} bootstrap refits (5-95 %): {spread} steps")
    return 0


def run_optimize(args: argparse.Namespace) -> int:
    from riverbed.predict import PredictError  # lazy: loads scipy; every verb module is imported for `riverbed --help`
    from riverbed.predict.optimize import optimize_schedule  # lazy: as above

    src = Path(args.law)
    if args.out is not None:  # the one output check; the suffix says the format
        check_output(args.out, flag="output", inputs=[src], suffixes=(".toml", ".json"), error=PredictError)
    fit = _law_file(args.law)
    opt = optimize_schedule(fit, args.steps, warmup=args.warmup_steps, peak_lr=args.peak_lr, min_lr=args.min_lr,
                            knots=args.knots, progress=not (args.no_progress or args.json), force=args.force)
    doc = opt.to_dict()
    if args.out is not None:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_text(args.out, _dumps(doc) if args.out.endswith(".json") else dumps_toml({"schedule": doc["schedule"]}))
    if args.json:
        print(_dumps(doc), end="")
        return 0
    t = Table(title=f"{fit.law} law: predicted final loss after {opt.steps} steps (peak LR {opt.peak_lr:g}, min {opt.min_lr:g})"
                    + (f" -- {FORCED}" if opt.forced else ""))
    for col in ("schedule", "final loss", "interval", "decay fraction", "vs optimum"):
        t.add_column(col, justify="right" if col != "schedule" else "left")
    t.add_row("optimized (free-form)", f"{opt.final_loss:.4f}", f"[{opt.lo:.4f}, {opt.hi:.4f}]", "-", "-")
    for b in sorted(opt.baselines, key=lambda b: b.final_loss):
        t.add_row(b.name, f"{b.final_loss:.4f}", "", f"{b.decay_fraction:.2f}", f"{b.final_loss - opt.final_loss:+.4f}")
    Console().print(t)
    print(f"interval: {opt.interval}")
    m = opt.multipliers
    post = m[opt.warmup:]
    hold = int((post >= 1.0 - 1e-6).sum())
    print(f"shape: peak held {hold} of {post.size} steps after the warmup, then down to {m[-1]:.3g} x peak")
    if args.out:
        print(f"wrote {args.out}")
    return 0
