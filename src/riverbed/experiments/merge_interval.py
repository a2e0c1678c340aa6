"""`riverbed experiment merge-interval`: does the best merge interval V grow with model size?

The PMA paper (arXiv 2505.12082) finds that the best spacing V between merged checkpoints grows
with the model (larger models want checkpoints further apart). Here, per model size and seed, a
constant-LR main branch of the same steps and tokens is trained (checkpoints every ``CKPT``
steps), and at its last step ``riverbed merge-sweep`` (:func:`riverbed.training.merge_sweep.
merge_sweep`) evaluates the SMA of the last N checkpoints for each V of the grid: the best V is
the one of lowest held-out loss. The sizes are ``tiny``-shaped models of width 32, 64 and 128
(and the ``1m`` preset in the full form), from ~25K to ~1M parameters.

Per seed the measured trend is the least-squares slope of log2(best V) against log10(parameters)
(> 0: V grows with size). Writes ``results.json``, ``results.md`` and ``merge_interval.png``
under ``--out``; ``--quick`` (or RIVERBED_BOUNDED=1) runs the three small sizes, 1 seed and
shorter runs in a few minutes.
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path
from typing import Any

from riverbed.experiments.preamble import add_arguments as common_arguments, fresh_output, mean_se, options
from riverbed.units import arg, parse_count

NAME = "merge-interval"
LR, N, CKPT, WARMUP = 1e-2, 4, 5, 20
#: size name -> riverbed ModelConfig.preset("tiny", **overrides) overrides (or another preset, "preset" key)
SIZES: dict[str, dict[str, Any]] = {
    "w32": dict(d_model=32, n_heads=2, n_kv_heads=2, d_ff=96),
    "w64": {},
    "w128": dict(d_model=128, n_heads=4, n_kv_heads=4, d_ff=320),
    "1m": dict(preset="1m"),
}
FULL = {"sizes": ("w32", "w64", "w128", "1m"), "steps": 400, "every": (5, 10, 20, 40), "seeds": 3}
QUICK = {"sizes": ("w32", "w64", "w128"), "steps": 200, "every": (5, 10, 20), "seeds": 1}


def add_arguments(p: argparse.ArgumentParser) -> None:
    common_arguments(p, NAME, seeds=FULL["seeds"], quick=True)
    p.add_argument("--sizes", type=lambda s: tuple(x for x in s.split(",") if x), default=None,
                   help=f"model sizes among {', '.join(SIZES)} (default {','.join(FULL['sizes'])}; quick {','.join(QUICK['sizes'])})")
    p.add_argument("--steps", type=arg(parse_count, positive=True), default=None, help=f"main-branch steps (default {FULL['steps']}; quick {QUICK['steps']})")


def model_config(size: str) -> Any:
    from riverbed.model import ModelConfig

    over = dict(SIZES[size])
    return ModelConfig.preset(over.pop("preset", "tiny"), **over, max_seq_len=64)


def one_run(root: Path, size: str, seed: int, steps: int, every: tuple[int, ...], data: Any) -> dict[str, Any]:
    """Train one size's main branch and sweep V at its last step: the losses per V and the best V."""
    from riverbed.experiments.small import small_config, train_root
    from riverbed.training.merge_sweep import merge_sweep

    cfg = small_config(seed, LR, {"type": "warmup-stable", "warmup": WARMUP}, model=model_config(size), seq_len=64, max_steps=steps,
                       ckpt_every=CKPT, eval_batches=8)
    run = train_root(cfg, root / f"{size}-seed{seed}", steps, data)
    res = merge_sweep(run.path, last=[N], every=every, methods=["sma"], progress=False)
    losses = {c.every: c.eval_loss for c in res.cells if c.eval_loss is not None}
    best = min(losses, key=lambda v: losses[v])
    return {"size": size, "seed": seed, "params": cfg.model.n_params(), "last_loss": res.last_loss,
            "loss_by_V": {str(v): x for v, x in losses.items()}, "best_V": best}


def trend(rows: list[dict[str, Any]]) -> float:
    """Least-squares slope of log2(best V) against log10(parameters) over one seed's sizes."""
    xs = [math.log10(r["params"]) for r in rows]
    ys = [math.log2(r["best_V"]) for r in rows]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den > 0 else 0.0


def measure(sizes: tuple[str, ...], steps: int, every: tuple[int, ...], seeds: int, root: Path, progress: bool) -> dict[str, Any]:
    """Every (size, seed) run, the per-size summary and the per-seed trends."""
    from riverbed.data import DataConfig, load_dataset
    from riverbed.io.progress import Progress

    data = load_dataset(DataConfig())
    runs = []
    with Progress(enabled=progress) as bar:
        task = bar.add(NAME, total=len(sizes) * seeds, unit="runs")
        for seed in range(seeds):
            for size in sizes:
                runs.append(one_run(root, size, seed, steps, every, data))
                bar.advance(task)
    summary = []
    for size in sizes:
        rows = [r for r in runs if r["size"] == size]
        gaps = {str(v): mean_se([r["loss_by_V"][str(v)] - r["last_loss"] for r in rows]) for v in every}
        summary.append({"size": size, "params": rows[0]["params"], "best_V": [r["best_V"] for r in rows],
                        "gap_vs_last": gaps, "mean_log2_best_V": statistics.fmean(math.log2(r["best_V"]) for r in rows)})
    trends = [trend([r for r in runs if r["seed"] == s]) for s in range(seeds)]
    return {"runs": runs, "summary": summary, "trend_per_seed": trends, "trend": mean_se(trends)}


def table(result: dict[str, Any], every: tuple[int, ...]) -> str:
    t = result["trend"]
    se, verdict = "", "one seed: no interval, no verdict"
    if t["se"] is not None:
        from scipy.stats import t as student  # lazy: only the table needs it

        lo, hi = t["mean"] - float(student.ppf(0.975, t["n"] - 1)) * t["se"], t["mean"] + float(student.ppf(0.975, t["n"] - 1)) * t["se"]
        se = f" ± {t['se']:.2f} s.e., 95 % t-interval [{lo:+.2f}, {hi:+.2f}]"
        verdict = ("V grows with size here" if lo > 0 else "V shrinks with size here" if hi < 0
                   else "inconclusive: the interval includes 0")
    lines = [f"SMA of the last {N} checkpoints at the end of a constant-LR main branch: held-out loss minus the last "
             f"checkpoint's (nats, mean ± s.e. over {t['n']} seed(s)), and the best V per seed.", "",
             "| size | params | " + " | ".join(f"V={v}" for v in every) + " | best V |", "|---|---:|" + "---:|" * (len(every) + 1)]
    for s in result["summary"]:
        cells = [f"{s['gap_vs_last'][str(v)]['mean']:+.4f}" + (f" ± {s['gap_vs_last'][str(v)]['se']:.4f}" if s["gap_vs_last"][str(v)]["se"] else "")
                 for v in every]
        lines.append(f"| {s['size']} | {s['params']:,} | " + " | ".join(cells) + f" | {', '.join(map(str, s['best_V']))} |")
    lines += ["", f"Trend: slope of log2(best V) against log10(parameters) = {t['mean']:+.2f}{se} ({verdict}; per seed "
              f"{', '.join(f'{x:+.2f}' for x in result['trend_per_seed'])})."]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], every: tuple[int, ...], out: Path) -> Path:
    from riverbed.reports.pyplot import pyplot, save

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for s in result["summary"]:
        ys = [s["gap_vs_last"][str(v)]["mean"] for v in every]
        err = [s["gap_vs_last"][str(v)]["se"] or 0.0 for v in every]
        ax.errorbar(every, ys, yerr=err, marker="o", capsize=3, label=f"{s['size']} ({s['params'] / 1e3:.0f}K params)")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xticks(every, [str(v) for v in every])
    ax.set_xlabel("V: steps between merged checkpoints")
    ax.set_ylabel(f"SMA({N}) loss − last checkpoint's (nats)")
    ax.set_title("best merge interval against model size")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, out)


def run(args: argparse.Namespace) -> int:
    from riverbed.io.atomic import write_json, write_text
    from riverbed.errors import ConfigError

    bad = [s for s in (args.sizes or ()) if s not in SIZES]
    if bad or (args.sizes is not None and len(args.sizes) < 2):
        raise ConfigError(f"merge-interval: --sizes needs at least 2 of {', '.join(SIZES)}; got {','.join(args.sizes or ())}")
    o = options(args, seeds=FULL["seeds"], bounded_seeds=QUICK["seeds"])
    form = QUICK if o.bounded else FULL
    sizes, steps, every = o.choose(args.sizes, QUICK["sizes"], FULL["sizes"]), o.choose(args.steps, QUICK["steps"], FULL["steps"]), form["every"]
    if steps < WARMUP + N * max(every) or steps % CKPT:
        raise ConfigError(f"merge-interval: --steps must be a multiple of {CKPT} of at least {WARMUP + N * max(every)} "
                          f"(warmup + {N} checkpoints {max(every)} apart)")
    out = fresh_output(args.out, NAME)  # only now: a bad flag deletes nothing
    result = measure(tuple(sizes), steps, every, o.seeds or 1, out / "runs", o.progress)
    write_json(out / "results.json", {"sizes": list(sizes), "steps": steps, "ckpt_every": CKPT, "N": N, "every": list(every),
                                         "lr": LR, "seeds": o.seeds, "bounded": o.bounded, **result})
    text = table(result, every)
    write_text(out / "results.md", text)
    plot(result, every, out / "merge_interval.png")
    print(text)
    print(f"wrote {out / 'merge_interval.png'}, {out / 'results.md'}, {out / 'results.json'}")
    return 0
