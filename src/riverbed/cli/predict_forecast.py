"""`riverbed predict forecast SOURCE`: the forecast monitor replayed over a main branch already logged.

    riverbed predict forecast runs/tiny                                    # a run with decay branches calibrates itself
    riverbed predict forecast out/checkpoint-900/trainer_state.json --prior law.json --plot f.png
    riverbed predict forecast runs/adopted --prior law.json --json

SOURCE is a run directory (riverbed's, or one `riverbed adopt` made) or one training log. At each eval point,
with only what was known then, it prints the loss a decay forked there would reach (silent until the refitted
law is usable), and scores the forecasts made at a decay branch's fork against what the branch measured.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from riverbed.checkpoints.outputs import check_output
from riverbed.cli.log_args import add_log_columns, log_columns, say
from riverbed.cli.predict_optimize import FORCED
from riverbed.units import arg, parse_count



def add_forecast_parser(sub: argparse._SubParsersAction, law_choices: tuple[str, ...]) -> None:
    f = sub.add_parser("forecast", help="replay the forecast monitor over a logged main branch: a run, an adopted run or a log")
    f.add_argument("source", metavar="SOURCE", help="a run directory, or one training log (trainer_state.json, W&B/CSV, JSONL, TensorBoard)")
    f.add_argument("--prior", default=None, metavar="LAW.json",
                   help="a law fitted on runs that decayed: its decay parameters calibrate the forecast (needed for a log)")
    f.add_argument("--law", choices=law_choices, default=None, help="law to refit (default: the prior's, else the predictor's default)")
    f.add_argument("--decay-fraction", type=float, default=0.2,
                   help="forecast decay length as a fraction of the budget, fork + decay (default 0.2: what "
                        "`riverbed branch --length 20%%` trains; [forecast] decay = 0.25 in a config)")
    f.add_argument("--shape", default="1-sqrt", help="forecast decay shape (default 1-sqrt)")
    f.add_argument("--min-ratio", type=float, default=0.0, help="final LR multiplier of the forecast decay (default 0)")
    f.add_argument("--min-points", type=arg(parse_count), default=8, help="eval points after the warmup before any forecast (default 8)")
    f.add_argument("--warmup-steps", type=arg(parse_count), default=None, help="log: linear warmup over N steps (default: found in the rows)")
    f.add_argument("--schedule", metavar="SPEC", default=None, help="log: schedule (x the largest logged LR) before the first row")
    add_log_columns(f)
    f.add_argument("--force", action="store_true", help="use a prior whose fit was unreliable (every output says forced)")
    f.add_argument("--json", action="store_true", help="print every forecast and check as JSON")
    f.add_argument("-o", "--output", dest="out", default=None, help="write the JSON to this file")
    f.add_argument("--plot", default=None, metavar="PNG", help="write the main curve with the forecasts and the measured decays")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.set_defaults(func=run_forecast)


def run_forecast(args: argparse.Namespace) -> int:
    from riverbed.io.atomic import write_text
    from riverbed.predict import PredictError  # lazy: loads scipy; every verb module is imported for `riverbed --help`
    from riverbed.predict.replay import replay_forecast  # lazy: as above
    from riverbed.predict.verbs import load_law, parse_spec  # lazy: as above

    inputs = [Path(args.source)] + ([Path(args.prior)] if args.prior else [])
    for o in (args.out, args.plot):
        if o is not None:
            check_output(o, flag="output", inputs=inputs, error=PredictError)
    prior = load_law(args.prior) if args.prior else None
    r = replay_forecast(args.source, prior=prior, law=args.law, decay_fraction=args.decay_fraction, shape=args.shape, min_ratio=args.min_ratio,
                        min_points=args.min_points, columns=log_columns(args), warmup_steps=args.warmup_steps,
                        schedule=parse_spec(args.schedule) if args.schedule else None, force=args.force,
                        progress=not (args.no_progress or args.json))
    say(r.main.notes)
    doc = r.to_dict()
    text = json.dumps(doc, indent=1, allow_nan=False) + "\n"
    if args.out is not None:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_text(args.out, text)
    if args.plot is not None:
        from riverbed.reports.predict_plot import plot_forecasts  # lazy: loads matplotlib

        plot_forecasts(r, args.plot)
    if args.json:
        print(text, end="")
        return 0
    if r.forced:
        print(FORCED)
    if not r.forecasts:
        print(f"{r.law} law: no forecast along {r.source} (the refitted law never became usable: fewer than "
              f"{args.min_points} eval points after the warmup, or no fit converged)")
        return 0
    t = Table(title=f"{r.law} forecast along {Path(r.source).name}: a {r.shape} decay over {r.decay_fraction:.0%} of the budget, "
                    "forked at each eval")
    for col in ("step", "eval loss", "decay ends", "forecast", "5-95 % band", "calibrated on"):
        t.add_column(col, justify="right" if col != "calibrated on" else "left")
    loss_at = dict(zip(r.main.steps.tolist(), r.main.loss.tolist()))
    for fc in r.forecasts:
        t.add_row(str(fc.step), f"{loss_at.get(fc.step, float('nan')):.4f}", str(fc.step + fc.decay_steps), f"{fc.loss:.4f}",
                  f"[{fc.lo:.4f}, {fc.hi:.4f}]", fc.calibration)
    Console(width=max(100, Console().width)).print(t)
    print(f"silent before step {r.first} (no usable fit yet)")
    for c in r.checks:
        print(f"check {c.branch}: forecast at step {c.fork} {c.forecast:.4f} [{c.lo:.4f}, {c.hi:.4f}], measured {c.measured:.4f} "
              f"({c.rel_error:+.2%}, {'inside' if c.inside else 'outside'} the band)")
    if args.out:
        print(f"wrote {args.out}")
    if args.plot:
        print(f"wrote {args.plot}")
    return 0
