"""`riverbed experiment multi-budget`: WSD branches, WSD-S and cyclic cosine at equal total compute.

Several finished models (one per budget T_1 < T_2 < T_3 steps) are wanted from one training
effort. Each method is configured for the same budgets, with decays of ``DECAY_FRACTION`` of
each budget (the WSD-S author configs: linear, to ``MIN_RATIO`` of the peak, over the last 10 %):

* **wsds** (``[schedule] type = "wsds"``): one branch that decays before each T_k and jumps back
  to the peak from the decayed weights. Its k-th finished model has cost T_k steps in all.
* **cyclic** (``type = "cyclic-cosine"``): one branch of cosine cycles ending at each T_k, each
  later cycle re-warmed linearly over ``warmup`` steps. Cost T_k.
* **wsd**: a constant-LR main branch with a linear decay branch of D_k steps per budget. For
  *equal total compute* (background: section 1, "checkpoint k of WSD-S lands exactly where WSD
  has spent the same total compute for budgets <= k"), decay k forks at
  F_k = T_k - (D_1 + ... + D_k): main up to F_k plus the decays so far cost exactly T_k. Its k-th
  model has therefore seen fewer tokens of its own (F_k + D_k) than WSD-S's.
* **cosine**: the reference, one cosine run of T_k steps per budget; budgets <= k cost
  T_1 + ... + T_k.

Every method is measured as the held-out loss of its k-th finished model against the tokens it
has spent on all budgets up to k, on the embedded corpus (byte tokens) and on the bigram data,
over ``--seeds`` seeds (mean ± standard error; differences paired by seed: the seed sets the
init and the data order, and all runs of a seed share them). Training is riverbed's own
(``train_main`` for the root branches, ``run_requests`` for the decay branches).

Writes ``results.json``, ``results.md`` and ``multi_budget.png`` under ``--out``.
RIVERBED_BOUNDED=1 (or ``--quick``) runs a short one-seed form.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from riverbed.config import RunConfig
from riverbed.experiments.preamble import bounded, fresh_output, mean_se

BUDGETS, WARMUP, DECAY_FRACTION, MIN_RATIO = (120, 240, 480), 12, 0.1, 0.1
METHODS = ("wsd", "wsds", "cyclic", "cosine")
# data name -> (peak LR, DataConfig fields); the LRs are each setup's usual one (scaling: 3e-3
# on the corpus; bigram: 1e-2, in the range where lr-sweep finds the decayed loss low).
DATASETS: dict[str, tuple[float, dict[str, Any]]] = {
    "corpus": (3e-3, {}),
    "bigram": (1e-2, {"source": "bigram", "vocab_size": 64, "bigram_tokens": 1 << 18, "bigram_successors": 16}),
}
FULL = {"batch": 16, "seq": 64, "eval_batches": 8, "eval_every": 20}
QUICK = {"budgets": (10, 20, 30), "warmup": 2, "seeds": 1, "batch": 4, "seq": 32, "eval_batches": 2, "eval_every": 5}


@dataclass(frozen=True)
class Plan:
    """The budgets (cumulative steps), each budget's decay length and WSD's fork steps.

    >>> p = plan((100, 200, 400), 0.1, 10)
    >>> p.decays, p.forks
    ((10, 20, 40), (90, 170, 330))
    """

    budgets: tuple[int, ...]
    decays: tuple[int, ...]
    forks: tuple[int, ...]
    warmup: int


def plan(budgets: tuple[int, ...], fraction: float, warmup: int) -> Plan:
    """Decay k = round(fraction * T_k) (>= 1); fork k = T_k minus all decays so far (equal compute)."""
    from riverbed.errors import ConfigError

    if len(budgets) < 2 or list(budgets) != sorted(set(budgets)) or budgets[0] < 1:
        raise ConfigError(f"--budgets={list(budgets)}: need at least 2 increasing positive step counts")
    decays = tuple(max(1, round(fraction * t)) for t in budgets)
    forks = tuple(t - sum(decays[: i + 1]) for i, t in enumerate(budgets))
    if forks[0] < warmup or any(b <= a for a, b in zip(forks, forks[1:])):
        raise ConfigError(f"--budgets={list(budgets)}: with {fraction:.0%} decays the WSD forks {list(forks)} must "
                          f"increase and start after the {warmup}-step warmup; space the budgets further apart")
    return Plan(tuple(budgets), decays, forks, warmup)


def _budgets(text: str) -> tuple[int, ...]:
    from riverbed.errors import ConfigError

    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(f"--budgets={text!r}: expected comma-separated steps like 120,240,480") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    from riverbed.units import arg

    p.add_argument("--out", type=Path, default=Path("experiments/multi-budget"), help="output folder (replaced)")
    p.add_argument("--budgets", type=arg(_budgets), default=None, help="budgets in steps, comma-separated (default " + ",".join(map(str, BUDGETS)) + ")")
    p.add_argument("--seeds", type=int, default=None, help="seeds per method (default 3; quick 1)")
    p.add_argument("--data", choices=(*DATASETS, "both"), default="both", help="which data (default both)")
    p.add_argument("--quick", action="store_true", help="the short form CI runs (also RIVERBED_BOUNDED=1)")
    p.add_argument("--no-progress", action="store_true")


def config(data: str, sched: dict[str, Any], geom: dict[str, Any], seed: int, max_steps: int | None) -> RunConfig:
    from riverbed.data import DataConfig
    from riverbed.experiments.small import small_config
    from riverbed.model import ModelConfig

    lr, fields = DATASETS[data]
    vocab = {"vocab_size": fields["vocab_size"]} if "vocab_size" in fields else {}
    return small_config(seed, lr, sched, model=ModelConfig.preset("tiny", max_seq_len=max(64, geom["seq"]), **vocab),
                        data=DataConfig(**fields), batch_size=geom["batch"], seq_len=geom["seq"], max_steps=max_steps,
                        ckpt_every=0, eval_every=geom["eval_every"], eval_batches=geom["eval_batches"])


def _evals(run_dir: Path, branch: str) -> list[dict[str, Any]]:
    from riverbed.checkpoints import layout
    from riverbed.training import read_metrics

    return [r for r in read_metrics(layout.metrics_path(run_dir, branch)) if r.get("kind") == "eval"]


def _point(budget: int, spent_steps: int, row: dict[str, Any], tps: int) -> dict[str, Any]:
    return {"budget": budget, "spent_tokens": spent_steps * tps, "own_tokens": row["tokens"], "loss": row["eval_loss"]}


def train_wsd(out: Path, data: str, p: Plan, geom: dict[str, Any], seed: int, ds: Any, progress: bool) -> dict[str, Any]:
    """Main branch to the last fork (checkpoints at every fork), then one decay branch per budget."""
    from riverbed.runs import Run
    from riverbed.orchestration.drive import train_main
    from riverbed.runs.fork import plan_requests
    from riverbed.orchestration.fork import run_requests

    cfg = config(data, {"type": "warmup-stable", "warmup": p.warmup}, geom, seed, None)
    run = Run.create(out, cfg)
    train_main(cfg, out, run, until_step=p.forks[-1], extra_stops=p.forks[:-1], progress=progress, data=ds)
    tps = geom["batch"] * geom["seq"]
    before = [sum(p.decays[:k]) for k in range(len(p.budgets))]  # decay steps spent before fork k
    main = [(r["step"] + sum(d for f, d in zip(p.forks, p.decays) if f < r["step"]), r["eval_loss"]) for r in _evals(out, "main")]
    curves = [[(s * tps, loss) for s, loss in main]]
    points = []
    for k, (fork, decay) in enumerate(zip(p.forks, p.decays)):
        (rec,) = run_requests(run, plan_requests(run, [fork], "linear", decay, min_ratio=MIN_RATIO), progress=progress, data=ds)
        rows = _evals(out, rec.name)
        start = [(x, y) for x, y in curves[0] if x == (fork + before[k]) * tps]  # the branch starts at its fork
        curves.append(start + [((r["step"] + before[k]) * tps, r["eval_loss"]) for r in rows])
        points.append(_point(p.budgets[k], fork + before[k] + decay, rows[-1], tps))
    return {"points": points, "curves": curves}


def train_root(out: Path, data: str, sched: dict[str, Any], p: Plan, geom: dict[str, Any], seed: int, ds: Any,
               progress: bool) -> dict[str, Any]:
    """One WSD-S or cyclic-cosine run; its finished models are the checkpoints at the budgets."""
    from riverbed.runs import Run
    from riverbed.orchestration.drive import train_main

    cfg = config(data, sched, geom, seed, p.budgets[-1])
    run = Run.create(out, cfg)
    train_main(cfg, out, run, progress=progress, data=ds)
    tps = geom["batch"] * geom["seq"]
    rows = {r["step"]: r for r in _evals(out, "main")}
    return {"points": [_point(t, t, rows[t], tps) for t in p.budgets], "curves": [[(s * tps, r["eval_loss"]) for s, r in sorted(rows.items())]]}


def train_cosine(out: Path, data: str, p: Plan, geom: dict[str, Any], seed: int, ds: Any, progress: bool) -> dict[str, Any]:
    """One cosine run per budget, each from scratch: budgets <= k cost T_1 + ... + T_k."""
    from riverbed.runs import Run
    from riverbed.orchestration.drive import train_main

    tps = geom["batch"] * geom["seq"]
    points, curves, spent = [], [], 0
    for t in p.budgets:
        cfg = config(data, {"type": "cosine", "steps": t, "warmup": p.warmup, "min_ratio": MIN_RATIO}, geom, seed, t)
        run_dir = out / f"cosine-{t}"
        train_main(cfg, run_dir, Run.create(run_dir, cfg), progress=progress, data=ds)
        rows = _evals(run_dir, "main")
        curves.append([((spent + r["step"]) * tps, r["eval_loss"]) for r in rows])
        spent += t
        points.append(_point(t, spent, rows[-1], tps))
    return {"points": points, "curves": curves}


def one_seed(out: Path, data: str, p: Plan, geom: dict[str, Any], seed: int, ds: Any, progress: bool,
             methods: tuple[str, ...] = METHODS) -> dict[str, Any]:
    """One seed of ``methods`` (default all four); each method's points and curves."""
    wsds = {"type": "wsds", "budgets": list(p.budgets), "warmup": p.warmup, "decays": list(p.decays), "shape": "linear", "min_ratio": MIN_RATIO}
    cyclic = {"type": "cyclic-cosine", "budgets": list(p.budgets), "warmup": p.warmup, "rewarmup": p.warmup, "min_ratio": MIN_RATIO}
    train = {"wsd": lambda: train_wsd(out / "wsd", data, p, geom, seed, ds, progress),
             "wsds": lambda: train_root(out / "wsds", data, wsds, p, geom, seed, ds, progress),
             "cyclic": lambda: train_root(out / "cyclic", data, cyclic, p, geom, seed, ds, progress),
             "cosine": lambda: train_cosine(out / "cosine", data, p, geom, seed, ds, progress)}
    return {"seed": seed, **{m: train[m]() for m in methods}}


def summarize(seeds: list[dict[str, Any]], p: Plan) -> dict[str, Any]:
    """Per method and budget: tokens spent (the same for every seed) and the loss mean ± s.e.;
    per budget, WSD-S minus each other method, paired by seed."""
    out: dict[str, Any] = {"methods": {}, "wsds_minus": {}}
    for m in METHODS:
        out["methods"][m] = [{"budget": t, "spent_tokens": seeds[0][m]["points"][k]["spent_tokens"],
                              "own_tokens": seeds[0][m]["points"][k]["own_tokens"],
                              "loss": mean_se([s[m]["points"][k]["loss"] for s in seeds])} for k, t in enumerate(p.budgets)]
    for m in ("wsd", "cyclic", "cosine"):
        out["wsds_minus"][m] = [mean_se([s["wsds"]["points"][k]["loss"] - s[m]["points"][k]["loss"] for s in seeds])
                                for k in range(len(p.budgets))]
    best = [min(METHODS[:3], key=lambda m: out["methods"][m][k]["loss"]["mean"]) for k in range(len(p.budgets))]
    out["best_at_equal_compute"] = best  # among the three multi-budget methods (cosine costs more)
    return out


def _fmt(m: dict[str, Any], digits: int = 4) -> str:
    return f"{m['mean']:.{digits}f}" + (f" ± {m['se']:.{digits}f}" if m.get("se") is not None else "")


def table(res: dict[str, Any]) -> str:
    lines = []
    for data, s in res["summary"].items():
        lines += [f"### {data} (entropy rate {res['entropy_rate'][data]:.4f})" if res["entropy_rate"].get(data) is not None else f"### {data}", "",
                  "| budget (steps) | " + " | ".join(f"{m}: loss (tokens spent)" for m in METHODS) + " | best of wsd/wsds/cyclic |",
                  "|---|" + "---|" * (len(METHODS) + 1)]
        for k, t in enumerate(res["budgets"]):
            cells = [f"{_fmt(s['methods'][m][k]['loss'])} ({s['methods'][m][k]['spent_tokens']:,})" for m in METHODS]
            lines.append(f"| {t} | " + " | ".join(cells) + f" | {s['best_at_equal_compute'][k]} |")
        lines += ["", "| budget (steps) | wsds - wsd | wsds - cyclic | wsds - cosine |", "|---|---|---|---|"]
        for k, t in enumerate(res["budgets"]):
            lines.append(f"| {t} | " + " | ".join(f"{_fmt(s['wsds_minus'][m][k], 4)}" for m in ("wsd", "cyclic", "cosine")) + " |")
        lines.append("")
    return "\n".join(lines)


def compare(out: str | Path, *, budgets: tuple[int, ...] = BUDGETS, seeds: int = 3, datas: tuple[str, ...] = tuple(DATASETS),
            quick: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run the comparison into ``out`` (replaced only if it is an experiment folder); returns what
    ``results.json`` holds. Python entry point of `riverbed experiment multi-budget`."""
    from riverbed.io.atomic import write_json, write_text
    from riverbed.data import load_dataset
    from riverbed.errors import ConfigError
    from riverbed.reports.multi_budget_plot import plot_multi_budget

    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"--seeds={seeds!r}: need at least 1 seed")
    if not datas or any(d not in DATASETS for d in datas):
        raise ConfigError(f"--data={list(datas)}: choose from {list(DATASETS)}")
    geom = {k: QUICK[k] for k in FULL} if quick else dict(FULL)
    p = plan(tuple(budgets), DECAY_FRACTION, QUICK["warmup"] if quick else WARMUP)
    out = fresh_output(out, "multi-budget")
    res: dict[str, Any] = {"budgets": list(p.budgets), "decays": list(p.decays), "wsd_forks": list(p.forks), "warmup": p.warmup,
                           "decay_fraction": DECAY_FRACTION, "min_ratio": MIN_RATIO, "geometry": geom, "seeds": seeds, "quick": quick,
                           "lr": {d: DATASETS[d][0] for d in datas}, "entropy_rate": {}, "summary": {}, "runs": {}}
    for data in datas:
        ds = load_dataset(config(data, {"type": "constant"}, geom, 0, None).data)
        res["entropy_rate"][data] = ds.language.entropy_rate if getattr(ds, "language", None) is not None else None
        runs = [one_seed(out / "runs" / data / f"seed{s}", data, p, geom, s, ds, progress) for s in range(seeds)]
        res["runs"][data] = runs
        res["summary"][data] = summarize(runs, p)
    write_json(out / "results.json", res)
    write_text(out / "results.md", table(res))
    plot_multi_budget(res, out / "multi_budget.png")
    return res


def run(args: argparse.Namespace) -> int:
    q = args.quick or bounded()
    res = compare(args.out, budgets=args.budgets if args.budgets is not None else (QUICK["budgets"] if q else BUDGETS),
                  seeds=args.seeds if args.seeds is not None else (QUICK["seeds"] if q else 3),
                  datas=tuple(DATASETS) if args.data == "both" else (args.data,), quick=q, progress=not args.no_progress)
    out = Path(args.out)
    print(table(res))
    print(f"wrote {out / 'multi_budget.png'}, {out / 'results.md'}, {out / 'results.json'}")
    return 0
