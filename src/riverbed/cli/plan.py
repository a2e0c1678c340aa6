"""`riverbed plan --budgets 1e8,2e8,4e8 --unit tokens`: WSD branches vs WSD-S vs cosine runs.

Prints a table (budgets, fork points, decay lengths, totals, ratio to one run of the
largest budget), optionally writes the plan as JSON (-o; the trainer runs it) and one
plot of the three strategies (--plot).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from riverbed.checkpoints.outputs import check_output
from riverbed.cli.deprecated import add_deprecated
from riverbed.reports.schedule_plots import plot_plan
from riverbed.schedules.budget_plan import plan_budgets
from riverbed.units import arg, parse_count, parse_float, parse_floats


def _fmt(x: float | int | None) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and x >= 1e6:
        return f"{x:.3g}"
    return f"{x:,}" if isinstance(x, int) else f"{x:g}"


def run(a: argparse.Namespace) -> int:
    for flag, path in (("-o/--output", a.output), ("--plot", a.plot)):
        if path:
            check_output(path, flag=flag)
    plan = plan_budgets(
        a.budgets, unit=a.unit, decay=a.decay, shape=a.shape, warmup=a.warmup,
        tokens_per_step=a.tokens_per_step, n_params=a.n_params,
        decay_of=a.decay_of, min_ratio=a.min_ratio,
    )
    retention = None
    if a.keep_for:  # the retention plan: which main checkpoints the planned branches, merges, guard need
        from riverbed.runs.retention import plan_retention

        if not a.ckpt_every:
            from riverbed.errors import ConfigError

            raise ConfigError("--keep-for needs --ckpt-every N (how often the main branch saves, train.ckpt_every)")
        retention = plan_retention(plan, a.keep_for, ckpt_every=a.ckpt_every, tokens_per_step=a.tokens_per_step,
                                   n_params=a.n_params, main_steps=a.main_steps)
    if a.output:
        if retention is None:
            plan.save(a.output)
        else:  # the keep rules travel with the plan: `[train] keep = ["plan=plan.json"]` reads them
            import json

            from riverbed.io.atomic import write_text

            write_text(a.output, json.dumps({**json.loads(plan.to_json()), "keep": retention["keep"]}, indent=2) + "\n")
    if a.plot:
        plot_plan(plan, a.plot)
    if a.json:
        if retention is not None:
            import json

            print(json.dumps({**json.loads(plan.to_json()), "retention": retention}, indent=2))
        else:
            print(plan.to_json(), end="")
        return 0

    # Piped or captured output gets a fixed width so rows are not wrapped mid-label.
    console = Console() if sys.stdout.isatty() else Console(width=120)
    pu = plan.position_unit
    t = Table(title=f"budgets ({a.unit}); schedules count {pu}; decay {plan.decay:g} of each {plan.decay_of}, shape {plan.shape}")
    for col in ("budget", f"length ({pu})", "WSD fork", "WSD decay", "WSD-S decay"):
        t.add_column(col, justify="right")
    for r in plan.rows:
        t.add_row(_fmt(r.budget), _fmt(r.length), _fmt(r.fork), _fmt(r.decay), _fmt(r.wsds_decay))
    console.print(t)
    s = Table(title="cost of a finished model at every budget")
    for col in ("strategy", f"total {pu}", "tokens", "FLOPs (6·N·D)", "× largest run"):
        s.add_column(col, justify="right")
    names = {"wsd": "WSD branches", "wsds": "WSD-S", "cosine": "cosine per budget"}
    for k, name in names.items():
        total = plan.total(k)
        s.add_row(name, _fmt(total), _fmt(plan.tokens(total)), _fmt(plan.flops(total)), f"{plan.ratio(k):.0%}")
    console.print(s)
    if retention is not None:
        _print_retention(console, retention)
    for path, what in ((a.output, "plan"), (a.plot, "plot")):
        if path:
            console.print(f"wrote {what} {path}")
    return 0


def _print_retention(console: Any, r: dict[str, Any]) -> None:
    from rich.table import Table
    from riverbed.runs.retention import format_bytes

    t = Table(title=f"retention plan ({', '.join(r['keep'])}): main saves every {r['ckpt_every']} steps up to {r['main_steps']}")
    t.add_column("step", justify="right")
    t.add_column("kept for")
    # consecutive checkpoints kept for the same reasons share one row ("460..500 every 10")
    groups: list[list[Any]] = []
    for s in r["kept_steps"]:
        why = "; ".join(dict.fromkeys(r["why"][str(s)]))
        g = groups[-1] if groups else None
        if g is not None and g[2] == why and s - g[1] == r["ckpt_every"]:
            g[1] = s
        else:
            groups.append([s, s, why])
    for a, b, why in groups:
        t.add_row(str(a) if a == b else f"{a}..{b} every {r['ckpt_every']}", why)
    console.print(t)
    disk = (f": {format_bytes(r['kept_bytes'])} of {format_bytes(r['all_bytes'])}" if r["kept_bytes"] is not None
            else " (give --n-params for the disk space)")
    console.print(f"keeps {r['kept']} of {r['saved']} main checkpoints{disk}")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("plan", help="plan several budgets: WSD branches vs WSD-S vs cosine runs")
    p.add_argument("--budgets", required=True, type=arg(parse_floats, positive=True),
                   help="comma-separated, increasing (e.g. 1e8,2e8,4e8 or 100M,200M,400M)")
    p.add_argument("--unit", choices=("steps", "tokens"), default="steps", help="unit of --budgets and --warmup")
    p.add_argument("--decay-fraction", dest="decay", type=arg(parse_float), default=0.1,
                   help="decay length as a fraction (see --decay-of); default 0.1")
    add_deprecated(p, "--decay", new="--decay-fraction", dest="decay", type=arg(parse_float))
    p.add_argument("--decay-of", choices=("budget", "largest", "period"), default="budget",
                   help="fraction of each budget (default), of the largest budget, or of the period since the previous budget")
    p.add_argument("--shape", default="1-sqrt", help="decay shape (default 1-sqrt)")
    p.add_argument("--min-ratio", type=float, default=0.0, help="final multiplier of every decay and cosine (default 0)")
    p.add_argument("--warmup", type=arg(parse_float), default=0, help="warmup length, in --unit (default 0)")
    p.add_argument("--tokens-per-step", type=arg(parse_count, positive=True),
                   help="tokens per optimizer step (turns token budgets into steps)")
    p.add_argument("--n-params", type=arg(parse_count, positive=True), help="model parameters N, for FLOPs = 6·N·tokens")
    p.add_argument("--keep-for", action="append", default=[], metavar="RULE",
                   help="retention plan: merge=N,V | guard=N | emulate | steps=A,B (repeatable); lists the main checkpoints "
                        "they and the planned forks need (riverbed.runs.retention); -o records the rules in the plan")
    p.add_argument("--ckpt-every", type=arg(parse_count, positive=True), default=None, help="main-branch checkpoint interval in steps (with --keep-for)")
    p.add_argument("--main-steps", type=arg(parse_count, positive=True), default=None,
                   help="how far main trains (with --keep-for; default: the last fork, or the last decay's end with emulate)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("-o", "--output", help="write the plan JSON here (the trainer accepts it)")
    p.add_argument("--plot", help="write one PNG of the three strategies here")
    p.set_defaults(func=run)
