"""`riverbed schedule plot|values|check SPEC`: look at a schedule before training with it.

SPEC is a TOML file (a [schedule] table or top-level keys, see docs/schedules.md) or
flags: --type wsd --warmup 10 --stable 70 --decay-steps 20 --shape 1-sqrt --min-ratio 0.1
(--steps N instead of --stable), or --preset hf|torchtitan|olmo-core with the same flags
mapped onto that framework's arguments. Counts take 100, 1K or 1e3.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from typing import Any

from rich.console import Console
from rich.table import Table

from riverbed.checkpoints.outputs import check_output
from riverbed.cli.deprecated import add_deprecated
from riverbed.errors import ConfigError
from riverbed.reports.schedule_plots import plot_boundaries, plot_schedules, plot_shapes
from riverbed.schedules import schedule_from_spec, schedule_to_spec
from riverbed.schedules.check import check_schedule
from riverbed.units import arg, parse_count, parse_counts

_count = arg(parse_count)


def _add_spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", nargs="?", help="TOML file with a [schedule] table (or top-level schedule keys)")
    g = p.add_argument_group("schedule from flags (instead of a file)")
    g.add_argument("--type", dest="stype", help="constant, warmup-stable, wsd, cosine, wsds, cyclic-cosine, decay-branch")
    g.add_argument("--preset", help="hf, torchtitan or olmo-core (with --budgets: OLMo-core WSDS)")
    g.add_argument("--warmup", type=_count, help="warmup steps")
    g.add_argument("--stable", type=_count, help="stable steps (wsd)")
    g.add_argument("--decay-steps", dest="decay", type=_count, metavar="N", help="decay steps")
    add_deprecated(g, "--decay", new="--decay-steps", dest="decay", type=_count)
    g.add_argument("--steps", type=_count, help="total steps (wsd: stable = steps - warmup - decay; cosine: length)")
    g.add_argument("--shape", help="decay shape (default 1-sqrt; see `riverbed schedule plot --shapes`)")
    g.add_argument("--min-ratio", type=float, help="final multiplier in [0, 1]")
    g.add_argument("--warmup-start", type=float, help="multiplier the warmup starts from")
    g.add_argument("--warmup-shape", help="linear, cosine or 1-sqrt")
    g.add_argument("--half-life", type=float, help="exp-minicpm: half-life in steps")
    g.add_argument("--stages", type=_count, help="step shape: number of stages")
    g.add_argument("--budgets", type=arg(parse_counts), help="wsds / cyclic-cosine: comma-separated cumulative steps")
    g.add_argument("--rewarmup", type=_count, help="cyclic-cosine: re-warmup steps")
    g.add_argument("--fork-step", type=_count, help="decay-branch: fork from a warmup-stable main at this step")


def _flags_spec(a: argparse.Namespace) -> dict[str, Any]:
    def put(d: dict[str, Any], key: str, value: Any) -> None:
        if value is not None:
            d[key] = value

    if a.preset:
        return _preset_spec(a)
    t = a.stype
    if t is None:
        raise ConfigError("schedule: give a SPEC file, --type or --preset")
    spec: dict[str, Any] = {"type": t}
    if t == "wsd":
        if a.decay is None:
            raise ConfigError("--decay-steps: required for --type wsd")
        if a.stable is None and a.steps is None:
            raise ConfigError("--stable: give --stable or --steps for --type wsd")
        # the spec takes --steps as `steps` itself (one vocabulary): it derives and checks `stable`
        spec.update(warmup=a.warmup or 0, decay=a.decay)
        put(spec, "stable", a.stable)
        put(spec, "steps", a.steps)
        for k, v in (("shape", a.shape), ("min_ratio", a.min_ratio), ("warmup_start", a.warmup_start),
                     ("warmup_shape", a.warmup_shape), ("half_life", a.half_life), ("stages", a.stages)):
            put(spec, k, v)
    elif t == "cosine":
        put(spec, "steps", a.steps)
        for k, v in (("warmup", a.warmup), ("min_ratio", a.min_ratio), ("warmup_start", a.warmup_start)):
            put(spec, k, v)
    elif t == "warmup-stable":
        for k, v in (("warmup", a.warmup), ("warmup_start", a.warmup_start), ("warmup_shape", a.warmup_shape)):
            put(spec, k, v)
    elif t == "constant":
        put(spec, "steps", a.steps)
    elif t in ("wsds", "cyclic-cosine"):
        if a.budgets is None:
            raise ConfigError(f"--budgets: required for --type {t}")
        budgets = a.budgets
        spec.update(budgets=budgets, warmup=a.warmup or 0)
        if t == "wsds":
            if a.decay is None:
                raise ConfigError("--decay-steps: required for --type wsds (steps decayed before each budget)")
            spec["decays"] = [a.decay] * len(budgets)
            for k, v in (("shape", a.shape), ("half_life", a.half_life), ("stages", a.stages)):
                put(spec, k, v)
        else:
            put(spec, "rewarmup", a.rewarmup)
        put(spec, "min_ratio", a.min_ratio)
    elif t == "decay-branch":
        if a.fork_step is None or a.decay is None:
            raise ConfigError("--fork-step: --fork-step and --decay-steps are required for --type decay-branch")
        spec.update(main={"type": "warmup-stable", "warmup": a.warmup or 0}, fork_step=a.fork_step, decay_steps=a.decay)
        for k, v in (("shape", a.shape), ("min_ratio", a.min_ratio), ("half_life", a.half_life), ("stages", a.stages)):
            put(spec, k, v)
    return spec


def _preset_spec(a: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {"preset": a.preset}

    def put(key: str, value: Any) -> None:
        if value is not None:
            spec[key] = value

    if a.preset == "hf":
        put("num_warmup_steps", a.warmup or 0)
        put("num_decay_steps", a.decay)
        put("num_training_steps", a.steps)
        put("num_stable_steps", a.stable)
        put("decay_type", a.shape)
        put("warmup_type", a.warmup_shape)
        put("min_lr_ratio", a.min_ratio)
    elif a.preset == "torchtitan":
        if a.steps is None:
            raise ConfigError("--steps: required for --preset torchtitan")
        put("steps", a.steps)
        put("warmup_steps", a.warmup or 0)
        if a.decay is not None:
            spec["decay_ratio"] = a.decay / a.steps
        put("decay_type", {"1-sqrt": "sqrt"}.get(a.shape, a.shape) if a.shape else None)
        put("min_lr_factor", a.min_ratio)
    elif a.preset == "olmo-core":
        if a.budgets is not None:
            budgets = a.budgets
            spec = {"preset": "olmo-core-wsds", "period_lengths": [b - p for b, p in zip(budgets, [0] + budgets[:-1])]}
            put("warmup", a.warmup or 0)
            put("decay", a.decay)
        else:
            put("t_max", a.steps)
            put("warmup_steps", a.warmup or 0)
            put("decay_steps", a.decay)
        put("decay_min_lr", a.min_ratio)
        put("warmup_min_lr", a.warmup_start)
    else:
        spec = {"preset": a.preset}  # unknown name: preset() names the choices
    return spec


def load_spec(a: argparse.Namespace) -> dict[str, Any]:
    """The schedule spec dict from a TOML file or from flags."""
    if a.spec is None:
        return _flags_spec(a)
    if a.stype or a.preset:
        raise ConfigError(f"schedule: give either a SPEC file ({a.spec}) or --type/--preset flags, not both")

    try:
        with open(a.spec, "rb") as fh:
            raw = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"SPEC file {a.spec}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"SPEC file {a.spec}: invalid TOML ({exc})") from None
    table = raw.get("schedule", raw)
    if not isinstance(table, dict):
        raise ConfigError(f"SPEC file {a.spec}: [schedule] must be a table")
    return table


def build(a: argparse.Namespace) -> Any:
    return schedule_from_spec(load_spec(a))


def _length(a: argparse.Namespace, schedule: Any) -> int:
    n = a.until if a.until is not None else schedule.total_steps
    if n is None:
        raise ConfigError("--until: the schedule is indefinite; say how many steps to evaluate")
    if n < 1:
        raise ConfigError(f"--until: must be >= 1, got {n}")
    return n


def run_plot(a: argparse.Namespace) -> int:
    if a.shapes or a.boundaries:
        out = a.plot or ("schedules_shapes.png" if a.shapes else "schedules_boundaries.png")
        check_output(out, flag="--plot", error=ConfigError)
        (plot_shapes if a.shapes else plot_boundaries)(out)
        print(f"wrote {out}")
        return 0
    if not a.plot:
        raise ConfigError("--plot: where to write the PNG")
    check_output(a.plot, flag="--plot", error=ConfigError)
    schedule = build(a)
    plot_schedules({a.spec or a.preset or a.stype: schedule}, a.plot, steps=_length(a, schedule), lr=a.lr)
    print(f"wrote {a.plot}")
    return 0


#: Rows `schedule values` prints at most: one line per step of a 10^9-step schedule is no table anyone reads
#: (and would hold gigabytes); --every K thins it.
MAX_VALUES = 1_000_000


def run_values(a: argparse.Namespace) -> int:
    schedule = build(a)
    n = _length(a, schedule)
    every = a.every
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ConfigError(f"--every: must be a whole number of steps >= 1, got {every!r}")
    steps = range(0, n, every)
    rows = len(steps) + (0 if (n - 1) % every == 0 else 1)  # the last step is always listed
    if rows > MAX_VALUES:
        raise ConfigError(f"{n:,} steps at --every {every} is {rows:,} rows, more than {MAX_VALUES:,}: give --every "
                          f"{-(-n // (MAX_VALUES - 1)):,} or more (or --until for the first steps)")
    listed = list(steps) + ([] if (n - 1) % every == 0 else [n - 1])
    if a.json:
        values = [schedule.multiplier(s) for s in listed]
        out = {"spec": schedule_to_spec(schedule), "total_steps": schedule.total_steps, "lr": a.lr,
               "multipliers": values, "lrs": [a.lr * v for v in values]}
        if every > 1:
            out["steps"] = listed
        json.dump(out, sys.stdout)
        sys.stdout.write("\n")
    else:
        for s in listed:  # one step at a time: nothing held
            v = schedule.multiplier(s)
            print(f"{s}\t{v:.8g}\t{a.lr * v:.8g}")
    return 0


def run_check(a: argparse.Namespace) -> int:
    schedule = build(a)
    checkpoints = a.checkpoints
    report = check_schedule(schedule, checkpoints, jump_tol=a.jump_tol, steps=a.until)
    if a.json:
        json.dump(report.to_dict(), sys.stdout)
        sys.stdout.write("\n")
        return 0

    console = Console() if sys.stdout.isatty() else Console(width=120)
    t = Table(title="schedule check", show_header=False)
    t.add_row("total steps", str(report.total_steps if report.total_steps is not None else "indefinite"))
    t.add_row("phases", ", ".join(f"{p.name} [{p.start}, {'∞' if p.end is None else p.end})" for p in report.phases))
    t.add_row("first / last multiplier", f"{report.first:.6g} / {'-' if report.last is None else f'{report.last:.6g}'}")
    reached = {True: "yes", False: "NO: the last step stops short", None: "n/a"}[report.min_reached]
    t.add_row("min reached", f"{reached} (target {report.target_min})")
    frac = "-" if report.decay_fraction is None else f"{report.decay_fraction:.1%}"
    t.add_row("steps in decay", f"{report.decay_steps} ({frac})")
    t.add_row("largest step change", f"{report.max_change:.4g}" + ("" if report.full_scan else " (sampled)"))
    t.add_row("jumps > tol", ", ".join(f"{j.step}: {j.before:.4g}→{j.after:.4g}" for j in report.jumps[:10]) or "none")
    for c, m in report.checkpoints:
        t.add_row(f"checkpoint {c}", f"last update at multiplier {m:.6g}")
    console.print(t)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("schedule", help="plot, list or check a learning-rate schedule")
    sub = parser.add_subparsers(dest="schedule_cmd", metavar="CMD", required=True)
    p = sub.add_parser("plot", help="plot a schedule to a PNG (or --shapes / --boundaries)")
    _add_spec_args(p)
    p.add_argument("--plot", default=None, metavar="PNG", help="where to write the PNG")
    add_deprecated(p, "-o", "--output", new="--plot", dest="plot")
    p.add_argument("--shapes", action="store_true", help="plot every decay shape side by side")
    p.add_argument("--boundaries", action="store_true", help="plot riverbed's boundary steps vs transformers/torchtitan")
    p.add_argument("--until", type=_count, help="steps to plot (needed for indefinite schedules)")
    p.add_argument("--lr", type=float, default=1.0, help="peak LR to scale by (default 1: multipliers)")
    p.set_defaults(func=run_plot)
    v = sub.add_parser("values", help="print the multiplier at every step")
    _add_spec_args(v)
    v.add_argument("--json", action="store_true", help="print JSON {spec, total_steps, multipliers, lrs}")
    v.add_argument("--until", type=_count, help="steps to list (needed for indefinite schedules)")
    v.add_argument("--every", type=_count, default=1, metavar="K",
                   help=f"every K-th step (and the last); at most {MAX_VALUES:,} rows (default 1: every step)")
    v.add_argument("--lr", type=float, default=1.0, help="peak LR to scale by")
    v.set_defaults(func=run_values)
    c = sub.add_parser("check", help="static check: jumps, min reached, decay share, LR at checkpoints")
    _add_spec_args(c)
    c.add_argument("--checkpoints", type=arg(parse_counts), help="comma-separated checkpoint steps (updates done)")
    c.add_argument("--jump-tol", type=float, default=0.1, help="list step-to-step changes above this (default 0.1)")
    c.add_argument("--until", type=_count, help="steps to check (for indefinite schedules)")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.set_defaults(func=run_check)
