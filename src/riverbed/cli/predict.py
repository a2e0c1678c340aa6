"""`riverbed predict fit|curve|branch|schedule|check|optimize|when|forecast`: loss curves of schedules never trained.

    riverbed predict fit runs/tiny --law mpl -o law.json            # main + the longest decay branch
    riverbed predict fit a.csv b.csv --law tissue -o law.json        # a user's own step,lr,loss logs
    riverbed predict curve law.json --lr c.csv --json                # predicted loss at each row of c.csv
    riverbed predict branch runs/tiny --from 800 --shape 1-sqrt --length 20% --plot b.png
    riverbed predict schedule runs/tiny --schedule '{"type": "cosine", "steps": 1000}'
    riverbed predict schedule runs/tiny --best-decay --budget 1000
    riverbed predict check runs/tiny --json                          # leave-one-out vs main/merge
    riverbed predict optimize law.json --steps 2000 --peak-lr 3e-3   # the schedule the law likes best (cli/predict_optimize.py)
    riverbed predict forecast runs/tiny                              # the forecast monitor replayed (cli/predict_forecast.py)
    riverbed predict when runs/tiny --target 2.05                    # when a decay reaches a loss, at what compute

SPEC is a schedule spec as inline JSON or a TOML/JSON file (a [schedule] table). Every fit is
judged (degrees of freedom, in-sample error, parameters at bounds, what the data cannot pin down):
an unreliable one is refused with exit 2 and its reasons unless --force, which marks every output
made with it "forced". Every prediction carries a 95 % interval. The computing lives in
riverbed.predict.verbs; this module parses and prints. numpy/scipy and the predictor load inside
the commands so ``riverbed --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from riverbed.checkpoints.outputs import check_output
from riverbed.cli.deprecated import add_deprecated
from riverbed.cli.log_args import add_log_columns, log_columns, say_one
from riverbed.io.atomic import write_text
from riverbed.cli.predict_forecast import add_forecast_parser
from riverbed.cli.predict_optimize import FORCED, add_optimize_parsers
from riverbed.units import JoinWords, arg, parse_count

# The laws of riverbed.predict.laws (LAWS, default first; tests/predict/test_cli.py keeps them in step): literal here so
# that `riverbed --help` does not load scipy.
LAW_CHOICES = ("valley", "mpl", "tissue", "momentum")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("predict", help="fit a schedule-aware loss law; predict decay branches and other schedules untrained",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="predict_cmd", metavar="CMD", required=True)

    def law_arg(q: argparse.ArgumentParser, extra: tuple[str, ...] = ()) -> None:
        q.add_argument("--law", choices=LAW_CHOICES + extra, default=LAW_CHOICES[0], help="valley law (default: lowest held-out error in bench/laws.py), Multi-Power "
                       "Law (mpl), annealing-area law (tissue) or forward-momentum law (momentum)"
                       + (" or all (every law, and their spread)" if extra else ""))
        q.add_argument("--lam", type=float, default=None, help="tissue: annealing-momentum decay factor (default 0.999)")
        q.add_argument("--force", action="store_true", help="use a fit its diagnostics call unreliable (every output says forced)")

    f = sub.add_parser("fit", help="fit a law to a run tree or to step,lr,loss CSV files")
    f.add_argument("sources", metavar="SOURCE", nargs="+", help="one run directory, or training logs: CSV / W&B exports (step,lr,loss), JSONL, trainer_state.json, TensorBoard events")
    law_arg(f)
    f.add_argument("--calibrate", metavar="BRANCH", nargs="+", default=None, help="run: branches to fit on (default: main + the longest finished decay branch)")
    f.add_argument("--warmup-steps", type=arg(parse_count), default=None, help="CSV: linear warmup over N steps (default: up to the first row)")
    f.add_argument("--schedule", metavar="SPEC", default=None, help="CSV: schedule (x the largest logged LR) for the steps before the first row")
    add_log_columns(f)
    f.add_argument("--max-points", type=int, default=32, help="eval points per curve used by the fit (default 32)")
    f.add_argument("--json", action="store_true", help="print the fit as JSON")
    f.add_argument("-o", "--output", dest="out", default=None, help="write the fit (law.json)")
    f.set_defaults(func=run_fit)

    c = sub.add_parser("curve", help="predict the loss at each row of a step,lr CSV")
    c.add_argument("law", metavar="LAW.json")
    c.add_argument("--lr", required=True, metavar="CSV", help="a training log with step and LR (and loss, to score the prediction): CSV / W&B export, JSONL, trainer_state.json, TensorBoard events")
    c.add_argument("--warmup-steps", type=arg(parse_count), default=None, help="linear warmup over N steps (default: up to the first row)")
    c.add_argument("--schedule", metavar="SPEC", default=None, help="schedule (x the largest logged LR) before the first row")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.add_argument("--force", action="store_true", help="use a law file whose fit was unreliable (marked forced)")
    add_log_columns(c)
    c.set_defaults(func=run_curve)

    b = sub.add_parser("branch", help="predicted eval-loss curve and final loss of an untrained decay branch")
    b.add_argument("run", metavar="RUN")
    b.add_argument("--from", dest="from_step", type=arg(parse_count), required=True, help="main-branch step to fork from (a saved checkpoint)")
    b.add_argument("--shape", dest="decay", default=None, metavar="SHAPE", help="decay shape (riverbed schedule shapes), as in `riverbed branch`")
    add_deprecated(b, "--decay", new="--shape", dest="decay", metavar="SHAPE")
    b.add_argument("--length", nargs="+", action=JoinWords, required=True, metavar=("N", "UNIT"), help="decay length: steps, '2M tok' or '20%%' of the budget")
    b.add_argument("--min-ratio", type=float, default=None, help="final LR multiplier (default 0)")
    law_arg(b, ("all",))
    _common_run(b)
    b.set_defaults(func=run_branch)

    s = sub.add_parser("schedule", help="predicted curve of any schedule, or the best decay at a budget")
    s.add_argument("run", metavar="RUN")
    s.add_argument("--schedule", metavar="SPEC", default=None, help="schedule spec to predict (inline JSON or a TOML/JSON file)")
    s.add_argument("--steps", type=arg(parse_count, positive=True), default=None, help="length for a schedule without an end")
    s.add_argument("--best-decay", action="store_true", help="search decay shape x length for the lowest predicted final loss")
    s.add_argument("--budget", type=arg(parse_count, positive=True), default=None, help="--best-decay: total steps (fork + decay)")
    law_arg(s)
    _common_run(s)
    s.set_defaults(func=run_schedule)

    k = sub.add_parser("check", help="leave-one-out over the finished decay branches vs the main and merge baselines")
    k.add_argument("run", metavar="RUN")
    k.add_argument("--law", nargs="+", choices=LAW_CHOICES, default=list(LAW_CHOICES), help="laws to check (default all)")
    k.add_argument("--no-merge", action="store_true", help="skip the PMA-merge baseline (it evaluates merged checkpoints)")
    k.add_argument("--merge-last", type=int, default=4, metavar="N", help="checkpoints per merge (default 4)")
    k.add_argument("--merge-method", choices=("sma", "ema", "wma"), default="sma", help="merge weights (default sma)")
    k.add_argument("--json", action="store_true", help='print {"branches": [...], "summary": {...}}')
    k.add_argument("--no-progress", action="store_true", help="no progress bars")
    k.add_argument("--force", action="store_true", help="predict with unreliable fold fits too (still not trusted in the verdict)")
    k.set_defaults(func=run_check)
    add_optimize_parsers(sub)
    add_forecast_parser(sub, LAW_CHOICES)


def _common_run(q: argparse.ArgumentParser) -> None:
    q.add_argument("--fit", default=None, metavar="LAW.json", help="use this fit instead of fitting the run now")
    q.add_argument("--bootstrap", type=arg(parse_count), default=20, help="bootstrap refits for the uncertainty (default 20; 0 = none)")
    q.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.add_argument("-o", "--output", dest="out", default=None, help="write the prediction as JSON")
    q.add_argument("--plot", default=None, help="write a PNG (the predicted curves beside the measured ones; --best-decay: the ranking)")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")


# -- helpers -------------------------------------------------------------------------------------

def check_outputs(outputs: list[str | None], inputs: list[Path]) -> None:
    """Every output through the one output check (riverbed.checkpoints.outputs)."""
    from riverbed.predict import PredictError  # lazy: loads scipy; every verb module is imported for `riverbed --help`

    for o in outputs:
        if o is not None:
            check_output(o, flag="output", inputs=inputs, error=PredictError)


def _write(path: str | None, text: str) -> None:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_text(path, text)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=1, allow_nan=False) + "\n"


def _ci(lo: float | None, hi: float | None) -> str:
    return "unbounded" if lo is None or hi is None else f"[{lo:.4g}, {hi:.4g}]"


def _print_fit(fit) -> None:
    d = fit.diagnostics
    title = f"{fit.law} fit (Huber 1e-3 on log loss), LR scale {fit.lr_scale:g}" + (f" -- {FORCED}" if fit.forced else "")
    t = Table(title=title)
    for col, just in (("param", "left"), ("value", "right"), ("95 % interval", "right"), ("in raw-LR units", "right"), ("note", "left")):
        t.add_column(col, justify=just)
    phys = fit.physical_params()
    checks = {c.name: c for c in d.params} if d is not None else {}
    for k, v in fit.params.items():
        c = checks.get(k)
        note = "" if c is None else ", ".join(([f"at {c.bound} bound"] if c.bound else []) + ([] if c.pinned else ["not pinned down"]))
        t.add_row(k, f"{v:.6g}", "-" if c is None else _ci(c.lo, c.hi), f"{phys[k]:.6g}", note)
    Console().print(t)
    for r in fit.residuals:
        print(f"{r.name}: {len(r.steps)} points, mean rel error {100 * r.mean_rel_error:.3f} %, max {100 * r.max_rel_error:.3f} %")
    if d is None:
        print("verdict: unknown (a law file written before fits carried diagnostics)")
    else:
        print(f"verdict: {d.verdict} ({d.points} points, {d.n_params} parameters, {d.dof} degrees of freedom)")
        for reason in d.reasons:
            print(f"  - {reason}")
        for note in d.notes:
            print(f"  note: {note}")
    if fit.forced:
        print(FORCED)


# -- commands ------------------------------------------------------------------------------------

def run_fit(args: argparse.Namespace) -> int:
    from riverbed.predict.verbs import fit_sources  # lazy: loads scipy; every verb module is imported for `riverbed --help`

    check_outputs([args.out], [Path(s) for s in args.sources])
    fit = fit_sources(args.sources, args.law, calibrate=args.calibrate, warmup_steps=args.warmup_steps, schedule=args.schedule,
                      max_points=args.max_points, lam=args.lam, force=args.force, columns=log_columns(args), on_note=say_one)
    text = fit.to_json()
    _write(args.out, text)
    if args.json:
        print(text, end="")
    else:
        _print_fit(fit)
        if args.out:
            print(f"wrote {args.out}")
    return 0


def run_curve(args: argparse.Namespace) -> int:
    from riverbed.predict.verbs import load_law, predict_csv  # lazy: loads scipy; every verb module is imported for `riverbed --help`

    res = predict_csv(load_law(args.law), args.lr, warmup_steps=args.warmup_steps, schedule=args.schedule, force=args.force,
                      columns=log_columns(args), on_note=say_one)
    doc = res.to_dict()
    if args.json:
        print(_dumps(doc), end="")
        return 0
    t = Table(title=f"{res.law} prediction for {args.lr}" + (f" -- {FORCED}" if res.forced else ""))
    for col in ("step", "lr", "predicted", "95 % interval", "loss", "rel error"):
        t.add_column(col, justify="right")
    for r in res.rows:
        t.add_row(str(r["step"]), f"{r['lr']:.4g}", f"{r['pred']:.4f}", _ci(r["lo"], r["hi"]), f"{r['loss']:.4f}" if "loss" in r else "-",
                  f"{100 * r['rel_error']:.3f} %" if "rel_error" in r else "-")
    Console().print(t)
    if "mean_rel_error" in doc:
        print(f"mean_rel_error {100 * doc['mean_rel_error']:.3f} %, max_rel_error {100 * doc['max_rel_error']:.3f} %")
    return 0


def _report(args: argparse.Namespace, pset) -> int:
    doc = pset.to_dict()
    text = _dumps(doc)
    if args.plot:
        from riverbed.reports.predict_plot import plot_predictions  # lazy: loads matplotlib; every verb module is imported for `riverbed --help`

        plot_predictions(pset.measured, pset.predictions, args.plot, tokens_per_step=pset.tokens_per_step,
                         title=f"run {pset.run.path.name}: predicted" + (" -- FORCED (unreliable fit)" if pset.forced else ""))
    _write(args.out, text)
    if args.json:
        print(text, end="")
        return 0
    for p in pset.predictions:
        t = Table(title=f"{p.name} ({p.law}): predicted eval loss, 95 % interval {p.interval}" + (f" -- {FORCED}" if p.forced else ""))
        for col in ("step", "tokens", "loss", "2.5 %", "97.5 %"):
            t.add_column(col, justify="right")
        idx = sorted(set(list(range(0, len(p.steps), max(1, len(p.steps) // 10))) + [len(p.steps) - 1]))
        for i in idx:
            t.add_row(str(int(p.steps[i])), str(int(p.tokens[i])), f"{p.loss[i]:.4f}", f"{p.lo[i]:.4f}", f"{p.hi[i]:.4f}")
        Console().print(t)
        print(f"final loss {p.final:.4f}, 95 % interval {p.interval_text()} ({p.interval})" + (" FORCED" if p.forced else ""))
    if pset.law_spread is not None:
        print(f"law_spread: {pset.law_spread}")
    for k, v in pset.trained.items():
        print(f"trained: {k} {v:.4f}")
    for path in (args.plot, args.out):
        if path:
            print(f"wrote {path}")
    return 0


def run_branch(args: argparse.Namespace) -> int:
    from riverbed.predict import PredictError  # lazy: loads scipy; every verb module is imported for `riverbed --help`
    from riverbed.predict.verbs import predict_branches  # lazy: loads scipy; every verb module is imported for `riverbed --help`

    if args.decay is None:
        raise PredictError("--shape: required (the decay shape, e.g. 1-sqrt)")
    check_outputs([args.out, args.plot], [Path(args.run)] + ([Path(args.fit)] if args.fit else []))
    pset = predict_branches(args.run, args.from_step, args.decay, args.length, law=args.law, fit=args.fit, min_ratio=args.min_ratio,
                            bootstrap=args.bootstrap, seed=args.seed, force=args.force, progress=not args.no_progress)
    return _report(args, pset)


def run_schedule(args: argparse.Namespace) -> int:
    from riverbed.predict import PredictError  # lazy: loads scipy; every verb module is imported for `riverbed --help`
    from riverbed.predict.ranking import best_decay  # lazy: loads scipy; every verb module is imported for `riverbed --help`
    from riverbed.predict.verbs import load_law, parse_spec, predict_any_schedule  # lazy: loads scipy; every verb module is imported for `riverbed --help`

    check_outputs([args.out, args.plot], [Path(args.run)] + ([Path(args.fit)] if args.fit else []))
    if args.best_decay == (args.schedule is not None):
        raise PredictError("give either --schedule SPEC or --best-decay --budget N")
    if not args.best_decay:
        pset = predict_any_schedule(args.run, parse_spec(args.schedule), law=args.law, fit=args.fit, steps=args.steps,
                                    bootstrap=args.bootstrap, seed=args.seed, force=args.force, progress=not args.no_progress)
        return _report(args, pset)
    if args.budget is None:
        raise PredictError("--best-decay needs --budget N (total steps)")
    ranking = best_decay(args.run, args.budget, law=args.law, fit=load_law(args.fit) if args.fit else None,
                         bootstrap=args.bootstrap, seed=args.seed, force=args.force, progress=not args.no_progress)
    doc = ranking.to_dict()
    if args.plot:
        from riverbed.reports.predict_plot import plot_ranking  # lazy: loads matplotlib; every verb module is imported for `riverbed --help`

        plot_ranking(ranking, args.plot)
    _write(args.out, _dumps(doc))
    if args.json:
        print(_dumps(doc), end="")
        return 0
    t = Table(title=f"best decay at {args.budget} steps ({ranking.law}), lowest predicted final loss first; 95 % interval "
                    f"{ranking.interval}" + (f" -- {FORCED}" if ranking.forced else ""))
    for col in ("shape", "length", "fork", "final loss", "95 % interval", "vs best", "fork saved"):
        t.add_column(col, justify="right")
    for i, o in enumerate(ranking.options[:15]):
        vs = "best" if i == 0 else ("=" if o.tied else ">")
        t.add_row(o.shape, str(o.length), str(o.fork), f"{o.final_loss:.4f}", _ci(*o.to_dict()["final_ci95"]), vs, "yes" if o.saved else "no")
    Console().print(t)
    print(ranking.statement())
    for path in (args.plot, args.out):
        if path:
            print(f"wrote {path}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from riverbed.predict.check import fmt_pct, loo_check  # lazy: loads scipy; every verb module is imported for `riverbed --help`

    report = loo_check(args.run, laws=args.law, merge=not args.no_merge, merge_last=args.merge_last, merge_method=args.merge_method,
                       progress=not args.no_progress, force=args.force)
    if args.json:
        print(_dumps(report.to_dict()), end="")
        return 0

    t = Table(title=f"leave-one-out over the finished decay branches of {report.run}")
    t.add_column("branch", overflow="fold")  # names are never cut (riverbed.io.progress.name_column)
    t.add_column("trained", justify="right")
    for m in report.methods:
        t.add_column(f"{m} (rel err)", justify="right")
    t.add_column("fit+predict s", justify="right")
    t.add_column("train s", justify="right")
    for b in report.branches:
        cells = []
        for m in report.methods:
            v = b.estimates.get(m)
            cell = "-" if v is None else f"{v:.4f} ({fmt_pct(b.rel_error(m))})"
            cells.append(("refused" if v is None else cell + " FORCED") if m in b.refused else cell)
        fit_s = " / ".join(f"{b.fit_s[law]:.2f}" for law in args.law)
        t.add_row(b.branch, f"{b.loss:.4f}", *cells, fit_s, "-" if b.train_s is None else f"{b.train_s:.1f}" + ("" if b.train_s_source == "measured" else " (est.)"))
    summ = report.summary()
    t.add_row("mean abs / rel", "", *[
        "-" if summ[m]["mean_abs_error"] is None else f"{summ[m]['mean_abs_error']:.4f} / {fmt_pct(summ[m]['mean_rel_error'])}"
        for m in report.methods], "", "")
    # A wide table: rich would squeeze it to 80 columns when stdout is not a terminal.
    Console(width=max(Console().width, 150)).print(t)
    for b in report.branches:
        for law, why in b.refused.items():
            print(f"{b.branch} ({law}) refused: {why}")
    print(report.verdict()["statement"])
    return 0
