"""`riverbed experiment decay-vs-merge`: does a merge of stable-phase checkpoints stand in for a decay?

Per seed: a tiny dense model trains a constant-LR main branch (checkpoints every ``CKPT`` steps) to
``last fork + D``; at each fork k a decay branch of D steps (shape ``--shape``) is trained. Then,
at the decay's end k + D, on the run's held-out batches:

* ``decay``: the trained decay branch;
* ``emulated``: the merge of the main checkpoints k..k+D with the decay's weights
  (:mod:`riverbed.orchestration.emulate`: decay_weights, moved onto the saved checkpoints by interpolation);
* ``sma`` / ``ema`` (alpha 0.2) / ``wma``: the PMA merges of the same D / CKPT + 1 checkpoints;
* ``main``: the undecayed main checkpoint at k + D.

Mean and standard error over seeds of each method's loss and of its gap to the decay. Writes
``results.json``, ``results.md`` and ``decay_vs_merge.png`` under ``--out``. ``--quick`` (or
RIVERBED_BOUNDED=1) runs a short two-seed form in about a minute.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
from pathlib import Path
from typing import Any

from riverbed.config import RunConfig
from riverbed.experiments.preamble import bounded
from riverbed.units import arg, parse_count

LR, CKPT, DECAY, FORKS, SEEDS, ALPHA = 1e-2, 10, 80, (160, 240, 320), 3, 0.2
QUICK = {"ckpt": 5, "decay": 20, "forks": (20, 40), "seeds": 2}
METHODS = ("decay", "emulated", "sma", "ema", "wma", "main")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("experiments/decay_vs_merge"), help="output folder (replaced)")
    p.add_argument("--seeds", type=int, default=None, help=f"seeds (default {SEEDS}; quick {QUICK['seeds']})")
    p.add_argument("--forks", type=lambda s: tuple(int(x) for x in s.split(",")), default=None,
                   help=f"fork steps, comma-separated (default {','.join(map(str, FORKS))})")
    p.add_argument("--decay-steps", dest="decay", type=arg(parse_count, positive=True), default=None, help=f"decay length D (default {DECAY})")
    p.add_argument("--ckpt-every", dest="ckpt", type=arg(parse_count, positive=True), default=None, help=f"main checkpoint interval (default {CKPT})")
    p.add_argument("--shape", default="linear", help="decay shape (default linear)")
    p.add_argument("--lr", type=float, default=LR, help=f"stable LR (default {LR})")
    p.add_argument("--quick", action="store_true", help="the short form CI runs (also RIVERBED_BOUNDED=1)")
    p.add_argument("--no-progress", action="store_true")


def config(seed: int, steps: int, ckpt: int, lr: float) -> RunConfig:
    from riverbed.experiments.small import small_config

    return small_config(seed, lr, {"type": "warmup-stable", "warmup": 10}, batch_size=8, seq_len=64, max_steps=steps,
                        ckpt_every=ckpt, eval_batches=8)


def one_seed(out: Path, seed: int, forks: tuple[int, ...], decay: int, ckpt: int, shape: str, lr: float, data: Any,
             progress: bool) -> dict[str, Any]:
    cfg = config(seed, max(forks) + decay, ckpt, lr)
    run = train_tree(out / f"seed{seed}", cfg, forks, decay, shape, data, progress)
    return {"seed": seed, "rows": measure_forks(run, cfg, data, forks, decay, shape)}


def train_tree(run_dir: Path, cfg: Any, forks: tuple[int, ...], decay: int, shape: str, data: Any,
               progress: bool = False) -> Any:
    """Main branch to ``max(forks) + decay`` (checkpoints every ``cfg.train.ckpt_every``), then one
    decay branch of ``decay`` steps per fork; returns the opened Run."""
    from riverbed.experiments.small import train_root
    from riverbed.orchestration.fork import run_requests
    from riverbed.runs.fork import plan_requests

    run = train_root(cfg, run_dir, max(forks) + decay, data, progress=progress)
    run_requests(run, plan_requests(run, list(forks), shape, decay), cfg=cfg, progress=progress, data=data)
    return run


def measure_forks(run: Any, cfg: Any, data: Any, forks: tuple[int, ...], decay: int, shape: str,
                  windows: dict[tuple[int, str], Any] | None = None, emulated: bool = True) -> list[dict[str, Any]]:
    """Per fork k of :func:`train_tree`'s run: held-out loss at k + decay of the trained decay, the
    emulated-decay merge, the SMA / EMA / WMA merges of main's checkpoints k..k+decay and main
    itself, all with the one evaluator (riverbed.training.evaluate.HeldoutEvaluator). ``windows``,
    if given, receives each model's per-window losses, keyed (fork, method); ``emulated=False``
    leaves the emulated merge out (it needs checkpoints at most 2 steps apart)."""
    from riverbed.checkpoints import layout
    from riverbed.checkpoints.state import read_safetensors
    from riverbed.experiments.small import evaluator
    from riverbed.merging.memory import merge_state_dicts
    from riverbed.merging.weights import weights_for
    from riverbed.orchestration.emulate import emulate_decay
    from riverbed.runs.fork import default_name

    ev = evaluator(cfg, data)  # the trainer's held-out batches, chunking and autocast
    ckpts = {r.step: r.path for r in layout.list_checkpoints(run.path, layout.MAIN)}
    cache: dict[Path, dict] = {}

    def tensors(path: Path) -> dict:
        if path not in cache:
            cache[path] = read_safetensors(path / layout.MODEL_FILE)
        return cache[path]

    rows = []
    for k in forks:
        end, name = k + decay, default_name(shape, k, decay)  # the branch train_tree forked

        def loss(state: dict, method: str, source: str) -> float:
            w = ev.window_losses(state, source)
            if windows is not None:
                windows[(k, method)] = w
            return float(w.mean())

        window = [s for s in sorted(ckpts) if k <= s <= end]
        states = [tensors(ckpts[s]) for s in window]
        row = {"fork": k, "end": end, "branch": name, "window": window,
               "decay": loss(tensors(layout.list_checkpoints(run.path, name)[-1].path), "decay", name),
               "main": loss(states[-1], "main", f"main@{end}")}
        if emulated:
            emu = emulate_decay(run, k, shape, decay)
            row.update(emulated_weights=list(emu.weights), emulated_steps=list(emu.steps),
                       emulated=loss(merge_state_dicts([tensors(p) for p in emu.paths], emu.weights), "emulated",
                                     "emulated merge"))
        for m in ("sma", "ema", "wma"):
            row[m] = loss(merge_state_dicts(states, weights_for(m, len(states), alpha=ALPHA)), m, f"{m} merge")
        rows.append(row)
    return rows


def _mse(xs: list[float]) -> dict[str, float | None]:
    se = statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else None
    return {"mean": statistics.fmean(xs), "se": se, "n": len(xs)}


def summarize(results: list[dict[str, Any]], forks: tuple[int, ...]) -> list[dict[str, Any]]:
    """Per fork: each method's loss and its gap to the trained decay, mean and s.e. over seeds."""
    out = []
    for i, k in enumerate(forks):
        rows = [r["rows"][i] for r in results]
        out.append({"fork": k, "end": rows[0]["end"], "loss": {m: _mse([r[m] for r in rows]) for m in METHODS},
                    "gap": {m: _mse([r[m] - r["decay"] for r in rows]) for m in METHODS if m != "decay"}})
    return out


def _fmt(m: dict[str, Any], signed: bool = False) -> str:
    v = f"{m['mean']:+.4f}" if signed else f"{m['mean']:.4f}"
    return v + (f" ± {m['se']:.4f}" if m.get("se") is not None else "")


def table(summary: list[dict[str, Any]], seeds: int) -> str:
    head = "| fork → end | decay (trained) | " + " | ".join(f"{m} − decay" for m in METHODS if m != "decay") + " |"
    lines = [f"Held-out loss at the decay's end, mean ± s.e. over {seeds} seeds; the other columns are each method's "
             "loss minus the trained decay's (negative = better than the decay).", "", head,
             "|" + "---|" * (len(METHODS) + 1)]
    for s in summary:
        lines.append(f"| {s['fork']} → {s['end']} | {_fmt(s['loss']['decay'])} | "
                     + " | ".join(_fmt(s["gap"][m], signed=True) for m in METHODS if m != "decay") + " |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from riverbed.io.atomic import write_json, write_text
    from riverbed.data import load_dataset
    from riverbed.errors import ConfigError
    from riverbed.reports.decay_merge_plot import plot_decay_vs_merge

    q = args.quick or bounded()
    seeds = args.seeds if args.seeds is not None else (QUICK["seeds"] if q else SEEDS)
    forks = tuple(sorted(args.forks)) if args.forks is not None else (QUICK["forks"] if q else FORKS)
    decay = args.decay if args.decay is not None else (QUICK["decay"] if q else DECAY)
    ckpt = args.ckpt if args.ckpt is not None else (QUICK["ckpt"] if q else CKPT)
    if seeds < 1 or decay < 1 or ckpt < 1 or not forks or min(forks) <= 10:
        raise ConfigError("decay-vs-merge: need --seeds >= 1, --decay-steps >= 1, --ckpt-every >= 1 and forks after the warmup (> 10)")
    bad = [k for k in forks if k % ckpt or (k + decay) % ckpt]
    if bad:
        raise ConfigError(f"decay-vs-merge: fork {bad[0]} and its end {bad[0] + decay} must be multiples of --ckpt-every {ckpt} "
                          "(saved main checkpoints)")
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    data = load_dataset(config(0, 1, ckpt, args.lr).data)
    results = [one_seed(out, s, forks, decay, ckpt, args.shape, args.lr, data, not args.no_progress) for s in range(seeds)]
    summary = summarize(results, forks)
    write_json(out / "results.json", {"forks": list(forks), "decay": decay, "ckpt_every": ckpt, "shape": args.shape, "lr": args.lr,
                                      "seeds": seeds, "quick": q, "ema_alpha": ALPHA, "summary": summary, "runs": results})
    text = table(summary, seeds)
    write_text(out / "results.md", text)
    plot_decay_vs_merge(summary, out / "decay_vs_merge.png", title=f"{args.shape} decay of {decay} steps vs merges ({seeds} seeds)")
    print(text)
    print(f"wrote {out / 'decay_vs_merge.png'}, {out / 'results.md'}, {out / 'results.json'}")
    return 0
