"""`riverbed predict fit|curve|branch|schedule|check|optimize|when`: loss curves of schedules never trained.

    riverbed predict fit runs/tiny --law mpl -o law.json            # main + the longest decay branch
    riverbed predict fit a.csv b.csv --law tissue -o law.json        # a user's own step,lr,loss logs
    riverbed predict curve law.json --lr c.csv --json                # predicted loss at each row of c.csv
    riverbed predict branch runs/tiny --from 800 --shape 1-sqrt --length 20% --plot b.png
    riverbed predict schedule runs/tiny --schedule '{"type": "cosine", "steps": 1000}'
    riverbed predict schedule runs/tiny --best-decay --budget 1000
    riverbed predict check runs/tiny --json                          # leave-one-out vs main/merge
    riverbed predict optimize law.json --steps 2000 --peak-lr 3e-3   # the schedule the law likes best (cli/predict_optimize.py)
    riverbed predict when runs/tiny --target 2.05                    # when a decay reaches a loss, at what compute

SPEC is a schedule spec as inline JSON or a TOML/JSON file (a [schedule] table). numpy/scipy and
the predictor load inside the commands so ``riverbed --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from riverbed.io.atomic import write_text
from riverbed.cli.deprecated import add_deprecated
from riverbed.cli.predict_optimize import add_optimize_parsers
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

    f = sub.add_parser("fit", help="fit a law to a run tree or to step,lr,loss CSV files")
    f.add_argument("sources", metavar="SOURCE", nargs="+", help="one run directory, or CSV files with columns step,lr,loss")
    law_arg(f)
    f.add_argument("--calibrate", metavar="BRANCH", nargs="+", default=None, help="run: branches to fit on (default: main + the longest finished decay branch)")
    f.add_argument("--warmup-steps", type=arg(parse_count), default=None, help="CSV: linear warmup over N steps (default: up to the first row)")
    f.add_argument("--schedule", metavar="SPEC", default=None, help="CSV: schedule (x the largest logged LR) for the steps before the first row")
    f.add_argument("--max-points", type=int, default=32, help="eval points per curve used by the fit (default 32)")
    f.add_argument("--json", action="store_true", help="print the fit as JSON")
    f.add_argument("-o", "--output", dest="out", default=None, help="write the fit (law.json)")
    f.set_defaults(func=run_fit)

    c = sub.add_parser("curve", help="predict the loss at each row of a step,lr CSV")
    c.add_argument("law", metavar="LAW.json")
    c.add_argument("--lr", required=True, metavar="CSV", help="CSV with columns step,lr (and loss, to score the prediction)")
    c.add_argument("--warmup-steps", type=arg(parse_count), default=None, help="linear warmup over N steps (default: up to the first row)")
    c.add_argument("--schedule", metavar="SPEC", default=None, help="schedule (x the largest logged LR) before the first row")
    c.add_argument("--json", action="store_true", help="print JSON")
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
    k.set_defaults(func=run_check)
    add_optimize_parsers(sub)


def _common_run(q: argparse.ArgumentParser) -> None:
    q.add_argument("--fit", default=None, metavar="LAW.json", help="use this fit instead of fitting the run now")
    q.add_argument("--bootstrap", type=arg(parse_count), default=20, help="bootstrap refits for the uncertainty (default 20; 0 = none)")
    q.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.add_argument("-o", "--output", dest="out", default=None, help="write the prediction as JSON")
    q.add_argument("--plot", default=None, help="write a PNG beside the measured curves")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")


# -- helpers -------------------------------------------------------------------------------------

def parse_spec(text: str) -> dict[str, Any]:
    """A schedule spec from inline JSON or a TOML/JSON file ([schedule] table or top-level keys)."""
    from riverbed.predict import PredictError  # lazy: loads scipy; every verb module is imported for `riverbed --help`

    s = text.strip()
    if s.startswith("{"):
        try:
            spec = json.loads(s)
        except json.JSONDecodeError as exc:
            raise PredictError(f"--schedule: invalid JSON ({exc})") from None
    else:
        path = Path(text)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise PredictError(f"--schedule {path}: cannot read ({exc.strerror})") from None
        try:
            if path.suffix == ".json":
                spec = json.loads(raw)
            else:
                spec = tomllib.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise PredictError(f"--schedule {path}: cannot parse ({exc})") from None
        spec = spec.get("schedule", spec) if isinstance(spec, dict) else spec
    if not isinstance(spec, dict):
        raise PredictError(f"--schedule: must be a table/object with a 'type' key, got {spec!r}")
    return spec


def check_outputs(outputs: list[str | None], inputs: list[Path]) -> None:
    """No output may be an input file or sit inside an input run directory."""
    from riverbed.predict import PredictError  # lazy: loads scipy; every verb module is imported for `riverbed --help`

    for o in outputs:
        if o is None:
            continue
        out = Path(o).resolve()
        for i in inputs:
            src = i.resolve()
            if out == src or (src.is_dir() and src in out.parents):
                raise PredictError(f"output {o}: would write over or inside the input {i}")


def _load_fit(path: str):
    from riverbed.predict import LawFit, PredictError  # lazy: loads scipy; every verb module is imported for `riverbed --help`

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PredictError(f"{path}: cannot read the law file ({exc.strerror})") from None
    return LawFit.from_json(text, where=path)


def _write(path: str | None, text: str) -> None:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_text(path, text)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=1, allow_nan=False) + "\n"


def _print_fit(fit) -> None:
    t = Table(title=f"{fit.law} fit (Huber 1e-3 on log loss), LR scale {fit.lr_scale:g}")
    t.add_column("param")
    t.add_column("value", justify="right")
    t.add_column("in raw-LR units", justify="right")
    phys = fit.physical_params()
    for k, v in fit.params.items():
        t.add_row(k, f"{v:.6g}", f"{phys[k]:.6g}")
    Console().print(t)
    for r in fit.residuals:
        print(f"{r.name}: {len(r.steps)} points, mean rel error {100 * r.mean_rel_error:.3f} %, max {100 * r.max_rel_error:.3f} %")


# -- commands ------------------------------------------------------------------------------------

def run_fit(args: argparse.Namespace) -> int:
    from riverbed.predict import PredictError, fit_law, read_curve_csv  # lazy: loads scipy; every verb module is imported for `riverbed --help`
    from riverbed.predict.runs import fit_run  # lazy: loads scipy; every verb module is imported for `riverbed --help`

    srcs = [Path(s) for s in args.sources]
    check_outputs([args.out], srcs)
    dirs = [s for s in srcs if s.is_dir()]
    if dirs:
        if len(srcs) != 1:
            raise PredictError(f"give one run directory or CSV files, not both/several ({', '.join(map(str, srcs))})")
        if args.warmup_steps is not None or args.schedule is not None:
            raise PredictError("--warmup-steps/--schedule are for CSV files; a run's schedules come from its run.json")
        fit = fit_run(dirs[0], args.law, args.calibrate, lam=args.lam, max_points=args.max_points)
    else:
        if args.calibrate:
            raise PredictError("--calibrate names branches of a run directory, not CSV files")
        spec = parse_spec(args.schedule) if args.schedule else None
        curves = [read_curve_csv(s, warmup_steps=args.warmup_steps, schedule=spec) for s in srcs]
        fit = fit_law(curves, args.law, lam=args.lam, max_points=args.max_points, meta={"sources": [str(s) for s in srcs]})
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
    from riverbed.predict import read_curve_csv  # lazy: loads scipy; every verb module is imported for `riverbed --help`

    fit = _load_fit(args.law)
    spec = parse_spec(args.schedule) if args.schedule else None
    curve = read_curve_csv(args.lr, warmup_steps=args.warmup_steps, schedule=spec, need_loss=False)
    pred = fit.predict(curve)
    rows = []
    for s, p, y in zip(curve.steps, pred, curve.loss):
        row: dict[str, Any] = {"step": int(s), "lr": float(curve.lr[min(int(s), curve.lr.size - 1)]), "pred": float(p)}
        if np.isfinite(y):
            row.update(loss=float(y), rel_error=float(abs(p - y) / y))
        rows.append(row)
    out: dict[str, Any] = {"law": fit.law, "csv": args.lr, "rows": rows}
    known = curve.known
    if np.any(known):
        e = np.abs(pred[known] - curve.loss[known]) / curve.loss[known]
        out.update(mean_rel_error=float(e.mean()), max_rel_error=float(e.max()))
    if args.json:
        print(_dumps(out), end="")
        return 0

    t = Table(title=f"{fit.law} prediction for {args.lr}")
    for col in ("step", "lr", "predicted", "loss", "rel error"):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(str(r["step"]), f"{r['lr']:.4g}", f"{r['pred']:.4f}", f"{r['loss']:.4f}" if "loss" in r else "-",
                  f"{100 * r['rel_error']:.3f} %" if "rel_error" in r else "-")
    Console().print(t)
    if "mean_rel_error" in out:
        print(f"mean_rel_error {100 * out['mean_rel_error']:.3f} %, max_rel_error {100 * out['max_rel_error']:.3f} %")
    return 0


def _fits(args: argparse.Namespace, run) -> dict[str, Any]:
    from riverbed.predict.runs import fit_run  # lazy: loads scipy; every verb module is imported for `riverbed --help`

    if args.fit:
        fit = _load_fit(args.fit)
        return {fit.law: fit}
    laws = LAW_CHOICES if args.law == "all" else (args.law,)
    return {law: fit_run(run, law, lam=args.lam) for law in laws}


def _report(args: argparse.Namespace, run, preds: list, extra: dict[str, Any]) -> int:
    from riverbed.predict.runs import branch_curve, tokens_per_step  # lazy: loads scipy; every verb module is imported for `riverbed --help`

    # A branch of the run already trained on the predicted schedule is shown (and reported) beside the prediction.
    trained = [b for b in run.branches if b.kind != "main" and b.final is not None and b.final.eval_loss is not None
               and any(b.schedule == p.schedule for p in preds)]
    if trained:
        extra = {**extra, "trained": {b.name: b.final.eval_loss for b in trained}}
    doc = {"run": str(run.path), "predictions": [p.to_dict() for p in preds], **extra}
    text = _dumps(doc)
    if args.plot:
        from riverbed.reports.predict_plot import plot_predictions  # lazy: loads scipy; every verb module is imported for `riverbed --help`

        measured = [branch_curve(run, run.branch("main"))] + [branch_curve(run, b) for b in trained]
        plot_predictions(measured, preds, args.plot, tokens_per_step=tokens_per_step(run), title=f"run {run.path.name}: predicted")
    _write(args.out, text)
    if args.json:
        print(text, end="")
        return 0

    for p in preds:
        t = Table(title=f"{p.name} ({p.law}): predicted eval loss")
        for col in ("step", "tokens", "loss", "5 %", "95 %"):
            t.add_column(col, justify="right")
        idx = sorted(set(list(range(0, len(p.steps), max(1, len(p.steps) // 10))) + [len(p.steps) - 1]))
        for i in idx:
            t.add_row(str(int(p.steps[i])), str(int(p.tokens[i])), f"{p.loss[i]:.4f}", f"{p.lo[i]:.4f}", f"{p.hi[i]:.4f}")
        Console().print(t)
        print(f"final loss {p.final:.4f} +- {p.final_std:.4f} (bootstrap std, {args.bootstrap} refits)")
    for k, v in extra.items():
        print(f"{k}: {v}")
    for path in (args.plot, args.out):
        if path:
            print(f"wrote {path}")
    return 0


def run_branch(args: argparse.Namespace) -> int:
    from riverbed.predict.runs import open_run, decay_request, predict_branch  # lazy: loads scipy; every verb module is imported for `riverbed --help`

    from riverbed.predict import PredictError  # lazy: loads scipy; every verb module is imported for `riverbed --help`

    if args.decay is None:
        raise PredictError("--shape: required (the decay shape, e.g. 1-sqrt)")
    run = open_run(args.run)
    check_outputs([args.out, args.plot], [run.path] + ([Path(args.fit)] if args.fit else []))
    decay_request(run, args.from_step, args.decay, args.length, args.min_ratio)  # bad fork/shape before any fit
    fits = _fits(args, run)
    preds = [predict_branch(run, args.from_step, args.decay, args.length, law=law, fit=fit, min_ratio=args.min_ratio,
                            bootstrap=args.bootstrap, seed=args.seed, progress=not args.no_progress) for law, fit in fits.items()]
    extra: dict[str, Any] = {}
    if len(preds) > 1:
        finals = [p.final for p in preds]
        extra["law_spread"] = float(max(finals) - min(finals))
    return _report(args, run, preds, extra)


def run_schedule(args: argparse.Namespace) -> int:
    from riverbed.predict import PredictError  # lazy: loads scipy; every verb module is imported for `riverbed --help`
    from riverbed.predict.runs import open_run, best_decay, predict_schedule  # lazy: loads scipy; every verb module is imported for `riverbed --help`

    run = open_run(args.run)
    check_outputs([args.out, args.plot], [run.path] + ([Path(args.fit)] if args.fit else []))
    if args.best_decay == (args.schedule is not None):
        raise PredictError("give either --schedule SPEC or --best-decay --budget N")
    if args.best_decay:
        if args.budget is None:
            raise PredictError("--best-decay needs --budget N (total steps)")
        (law, fit), = _fits(args, run).items()
        options = best_decay(run, args.budget, law=law, fit=fit)
        doc = {"run": str(run.path), "law": law, "budget": args.budget, "options": [o.to_dict() for o in options]}
        _write(args.out, _dumps(doc))
        if args.json:
            print(_dumps(doc), end="")
            return 0

        t = Table(title=f"best decay at {args.budget} steps ({law}), lowest predicted final loss first")
        for col in ("shape", "length", "fork", "final loss", "fork saved"):
            t.add_column(col, justify="right")
        for o in options[:15]:
            t.add_row(o.shape, str(o.length), str(o.fork), f"{o.final_loss:.4f}", "yes" if o.saved else "no")
        Console().print(t)
        return 0
    spec = parse_spec(args.schedule)
    (law, fit), = _fits(args, run).items()
    pred = predict_schedule(run, spec, law=law, fit=fit, steps=args.steps, bootstrap=args.bootstrap, seed=args.seed,
                            progress=not args.no_progress)
    return _report(args, run, [pred], {})


def run_check(args: argparse.Namespace) -> int:
    from riverbed.predict.check import fmt_pct, loo_check  # lazy: loads scipy; every verb module is imported for `riverbed --help`

    report = loo_check(args.run, laws=args.law, merge=not args.no_merge, merge_last=args.merge_last, merge_method=args.merge_method,
                       progress=not args.no_progress)
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
            cells.append("-" if v is None else f"{v:.4f} ({fmt_pct(b.rel_error(m))})")
        fit_s = " / ".join(f"{b.fit_s[law]:.2f}" for law in args.law)
        t.add_row(b.branch, f"{b.loss:.4f}", *cells, fit_s, "-" if b.train_s is None else f"{b.train_s:.1f}" + ("" if b.train_s_source == "measured" else " (est.)"))
    summ = report.summary()
    t.add_row("mean abs / rel", "", *[
        "-" if summ[m]["mean_abs_error"] is None else f"{summ[m]['mean_abs_error']:.4f} / {fmt_pct(summ[m]['mean_rel_error'])}"
        for m in report.methods], "", "")
    # A wide table: rich would squeeze it to 80 columns when stdout is not a terminal.
    Console(width=max(Console().width, 150)).print(t)
    return 0
