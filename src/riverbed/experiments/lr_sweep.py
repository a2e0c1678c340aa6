"""`riverbed experiment lr-sweep`: the decay drop and the decayed loss against the stable LR.

The river-valley picture (background: section 2) predicts that the loss drop of a short decay
grows with the stable LR (the hill component is ~ eta sigma^2 / 4), and that a higher stable LR
below instability ends lower after its decay even where it is worse before it.

Per stable LR and seed, the bigram experiment's setup (riverbed.experiments.bigram: tiny dense
model, ``source = "bigram"``) trains a constant-LR main branch for ``--steps`` steps and forks one
linear decay branch (to ``min_ratio`` 0, like ``riverbed experiment bigram``) of ``--decay-steps``
at its end. Measured per run: the held-out loss at the fork ("stable"), after the decay
("decayed"), their difference ("drop"), and the drop per context-entropy bucket. A run whose
stable loss is not finite or is above the loss of a uniform guess (log V) counts as diverged
and is reported, not averaged.

Mean and standard error over seeds (3 by default). Writes ``results.json``, ``results.md`` and
``lr_sweep.png`` under ``--out``. RIVERBED_BOUNDED=1 (or ``--quick``) runs a short one-seed form.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from riverbed.experiments.bigram import config
from riverbed.experiments.preamble import bounded, fresh_output, mean_se
from riverbed.units import arg, parse_count

LRS = (1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2)
STEPS, DECAY, EVAL_EVERY = 600, 100, 50
QUICK = {"lrs": (1e-3, 1e-2), "steps": 30, "decay": 10, "seeds": 1, "eval_every": 10}
BUCKETS = ("deterministic", "low", "mid", "high")


def _lrs(text: str) -> tuple[float, ...]:
    from riverbed.errors import ConfigError

    try:
        lrs = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(f"--lrs={text!r}: expected comma-separated learning rates like 1e-3,1e-2") from None
    if len(lrs) < 2 or any(not (x > 0 and math.isfinite(x)) for x in lrs) or list(lrs) != sorted(set(lrs)):
        raise ConfigError(f"--lrs={text!r}: need at least 2 increasing positive learning rates")
    return lrs


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("experiments/lr-sweep"), help="output folder (replaced)")
    p.add_argument("--lrs", type=arg(_lrs), default=None, help="stable LRs, comma-separated (default " + ",".join(f"{x:g}" for x in LRS) + ")")
    p.add_argument("--seeds", type=int, default=None, help="seeds per LR (default 3; quick 1)")
    p.add_argument("--steps", type=arg(parse_count, positive=True), default=None, help=f"stable steps before the decay (default {STEPS})")
    p.add_argument("--decay-steps", dest="decay", type=arg(parse_count, positive=True), default=None, help=f"decay steps (default {DECAY})")
    p.add_argument("--quick", action="store_true", help="the short form CI runs (also RIVERBED_BOUNDED=1)")
    p.add_argument("--no-progress", action="store_true")


def one_run(run_dir: Path, lr: float, seed: int, steps: int, decay: int, eval_every: int, data: Any, progress: bool) -> dict[str, Any]:
    """Main at constant ``lr`` to ``steps + decay`` (a checkpoint at ``steps``), and a linear decay
    forked at ``steps``: the drop against the fork and against the constant-LR continuation."""
    from riverbed.runs import Run
    from riverbed.orchestration.drive import train_main
    from riverbed.runs.fork import plan_requests
    from riverbed.orchestration.fork import run_requests

    cfg = config(seed, steps + decay, steps + decay, eval_every, lr)
    run = Run.create(run_dir, cfg)
    res = train_main(cfg, run_dir, run, until_step=steps + decay, extra_stops=[steps], progress=progress, data=data)
    rows = _evals(run_dir, "main")
    by_step = {r["step"]: r for r in rows}
    fork, cont = by_step.get(steps, {"eval_loss": None}), by_step.get(steps + decay, {"eval_loss": None})
    limit = math.log(cfg.data.vocab_size or 64)
    stable, constant = _finite(fork["eval_loss"]), _finite(cont["eval_loss"])
    out: dict[str, Any] = {"lr": lr, "seed": seed, "main": [(r["tokens"], _finite(r["eval_loss"])) for r in rows],
                           "stable_loss": stable, "constant_loss": constant, "diverged": True}
    if res.stopped is not None or stable is None or constant is None or max(stable, constant) > limit:
        return out  # no decay from a diverged run: its "drop" would mean nothing
    (rec,) = run_requests(run, plan_requests(run, [steps], "linear", decay, min_ratio=0.0), progress=progress, data=data)
    drows = _evals(run_dir, rec.name)
    end = drows[-1]
    out.update(
        diverged=False, decay=[(r["tokens"], r["eval_loss"]) for r in drows], decayed_loss=end["eval_loss"],
        drop=stable - end["eval_loss"], drop_vs_constant=constant - end["eval_loss"], optimal_loss=end["eval_optimal_loss"],
        bucket_drop={b: cont["eval_loss_by_bucket"][b] - end["eval_loss_by_bucket"][b]
                     for b in BUCKETS if b in cont["eval_loss_by_bucket"] and b in end["eval_loss_by_bucket"]},
    )
    return out


def _evals(run_dir: Path, branch: str) -> list[dict[str, Any]]:
    from riverbed.checkpoints import layout
    from riverbed.training import read_metrics

    return [r for r in read_metrics(layout.metrics_path(run_dir, branch)) if r.get("kind") == "eval"]


def _finite(x: Any) -> float | None:
    """A loss as JSON can hold it: None for a missing or non-finite value (strict JSON has no NaN)."""
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def summarize(runs: list[dict[str, Any]], lrs: tuple[float, ...], entropy_rate: float | None = None) -> dict[str, Any]:
    """Per LR: mean ± s.e. of the stable, decayed and drop losses over its non-diverged seeds."""
    rows = []
    for lr in lrs:
        ok = [r for r in runs if r["lr"] == lr and not r["diverged"]]
        row: dict[str, Any] = {"lr": lr, "seeds": len([r for r in runs if r["lr"] == lr]), "diverged": sum(r["diverged"] for r in runs if r["lr"] == lr)}
        if ok:
            row.update(stable=mean_se([r["stable_loss"] for r in ok]), constant=mean_se([r["constant_loss"] for r in ok]),
                       decayed=mean_se([r["decayed_loss"] for r in ok]), drop=mean_se([r["drop"] for r in ok]),
                       drop_vs_constant=mean_se([r["drop_vs_constant"] for r in ok]), excess_decayed=mean_se([r["decayed_loss"] - r["optimal_loss"] for r in ok]),
                       bucket_drop={b: mean_se([r["bucket_drop"][b] for r in ok]) for b in BUCKETS if all(b in r["bucket_drop"] for r in ok)})
        rows.append(row)
    good = [r for r in rows if "drop" in r]
    drops = [r["drop_vs_constant"]["mean"] for r in good]
    best = min(good, key=lambda r: r["decayed"]["mean"]) if good else None
    best_stable = min(good, key=lambda r: r["stable"]["mean"]) if good else None
    return {
        "rows": rows, "entropy_rate": entropy_rate,
        # the drop against the constant-LR continuation (the same tokens): is it larger at every step up in LR?
        "drop_increases_with_lr": all(b > a for a, b in zip(drops, drops[1:])) if len(drops) > 1 else None,
        "drop_rank_correlation": _rank_corr([r["lr"] for r in good], drops),
        "best_decayed_lr": best["lr"] if best else None, "best_stable_lr": best_stable["lr"] if best_stable else None,
    }


def _rank_corr(xs: list[float], ys: list[float]) -> float | None:
    """Spearman rank correlation (no ties expected among distinct LRs / real-valued drops)."""
    n = len(xs)
    if n < 2:
        return None
    rx = {i: r for r, i in enumerate(sorted(range(n), key=xs.__getitem__))}
    ry = {i: r for r, i in enumerate(sorted(range(n), key=ys.__getitem__))}
    return 1 - 6 * sum((rx[i] - ry[i]) ** 2 for i in range(n)) / (n * (n * n - 1))


def _fmt(m: dict[str, Any] | None) -> str:
    if m is None:
        return "diverged"
    return f"{m['mean']:.4f}" + (f" ± {m['se']:.4f}" if m.get("se") is not None else "")


def table(s: dict[str, Any]) -> str:
    lines = ["| stable LR | seeds (diverged) | loss at the fork | constant LR, same tokens as decayed | after the decay | "
             "drop vs fork | drop vs constant LR | of which `high` bucket | `deterministic` bucket |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in s["rows"]:
        b = r.get("bucket_drop", {})
        lines.append(f"| {r['lr']:g} | {r['seeds']} ({r['diverged']}) | {_fmt(r.get('stable'))} | {_fmt(r.get('constant'))} | "
                     f"{_fmt(r.get('decayed'))} | {_fmt(r.get('drop'))} | {_fmt(r.get('drop_vs_constant'))} | "
                     f"{_fmt(b.get('high'))} | {_fmt(b.get('deterministic'))} |")
    if s["entropy_rate"] is not None:
        lines += ["", f"Entropy rate (optimal loss): {s['entropy_rate']:.4f}."]
    lines += ["Bucket drops are against the constant-LR continuation (same tokens).",
              f"Drop vs constant LR increases at every step up in LR: {s['drop_increases_with_lr']}; "
              f"rank correlation of that drop with LR: {s['drop_rank_correlation'] if s['drop_rank_correlation'] is None else round(s['drop_rank_correlation'], 3)}.",
              f"Lowest loss after the decay at LR {s['best_decayed_lr']}; lowest loss before it at LR {s['best_stable_lr']}."]
    return "\n".join(lines) + "\n"


def sweep(out: str | Path, *, lrs: tuple[float, ...] = LRS, seeds: int = 3, steps: int = STEPS, decay: int = DECAY,
          eval_every: int = EVAL_EVERY, quick: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run the sweep into ``out`` (replaced only if it is an experiment folder); returns what
    ``results.json`` holds. Python entry point of `riverbed experiment lr-sweep`."""
    from riverbed.io.atomic import write_json, write_text
    from riverbed.data import load_dataset
    from riverbed.errors import ConfigError
    from riverbed.reports.river_valley import plot_lr_sweep

    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"--seeds={seeds!r}: need at least 1 seed")
    lrs = _lrs(",".join(repr(float(x)) for x in lrs))
    out = fresh_output(out, "lr-sweep")
    data = load_dataset(config(0, steps, steps, eval_every, lrs[0]).data)
    runs = [one_run(out / "runs" / f"lr{lr:g}-seed{s}", lr, s, steps, decay, eval_every, data, progress)
            for lr in lrs for s in range(seeds)]
    summary = summarize(runs, lrs, data.language.entropy_rate)
    res = {"lrs": list(lrs), "steps": steps, "decay": decay, "seeds": seeds, "quick": quick, "summary": summary, "runs": runs}
    write_json(out / "results.json", res)
    write_text(out / "results.md", table(summary))
    plot_lr_sweep(summary, runs, out / "lr_sweep.png")
    return res


def run(args: argparse.Namespace) -> int:
    q = args.quick or bounded()
    res = sweep(args.out, lrs=args.lrs if args.lrs is not None else (QUICK["lrs"] if q else LRS),
                seeds=args.seeds if args.seeds is not None else (QUICK["seeds"] if q else 3),
                steps=args.steps if args.steps is not None else (QUICK["steps"] if q else STEPS),
                decay=args.decay if args.decay is not None else (QUICK["decay"] if q else DECAY),
                eval_every=QUICK["eval_every"] if q else EVAL_EVERY, quick=q, progress=not args.no_progress)
    out = Path(args.out)
    print(table(res["summary"]))
    print(f"wrote {out / 'lr_sweep.png'}, {out / 'results.md'}, {out / 'results.json'}")
    return 0
