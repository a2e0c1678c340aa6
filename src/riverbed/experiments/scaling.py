"""`riverbed experiment scaling`: a scaling study from WSD branches, against cosine runs.

For each of three model sizes (dense Llama-style, byte tokens of the embedded corpus) one WSD
main branch trains at a constant LR and four 1-sqrt decay branches are forked from it (each
decays over the last ``DECAY`` of its budget). Every size's largest budget is **held out**:

* ``data`` law L(D) = E + B/D^beta per size, fitted on the three smaller budgets;
* ``chinchilla`` law L(N, D) fitted on all sizes' three smaller budgets (bootstrap intervals);
* decay-free: the ``data`` law fitted on PMA merges of main checkpoints at the same budgets;

each predicts the held-out loss; the relative prediction errors are reported. For the
smallest size, independent cosine runs (one per budget, min LR ratio as the decays) give the
same ``data`` study, and the tokens spent by both are compared (the WSD tree pays for the
longest main branch plus the decays; cosine pays for every budget from scratch).

Writes ``results.json``, ``results.md`` (tables) and ``scaling.png`` under ``--out``.
RIVERBED_BOUNDED=1 runs a short form (a few minutes on 2 CPU cores at most).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from riverbed.config import RunConfig
from riverbed.io.atomic import write_json, write_text
from riverbed.executors.flags import add_executor_arguments, executor_from_args
from riverbed.data import load_dataset
from riverbed.errors import ConfigError
from riverbed.experiments.preamble import add_arguments as add_arguments_common, bounded, start
from riverbed.experiments.small import small_config
from riverbed.model import ModelConfig
from riverbed.reports.experiment_plots import plot_scaling_study
from riverbed.runs import Run
from riverbed.orchestration.drive import train_main
from riverbed.executors.branches import run_requests
from riverbed.runs.fork import parse_length, plan_requests
from riverbed.scaling import fit_law, load_run, predict
from riverbed.scaling.merge_points import merge_points
from riverbed.scaling.points import concat

# name -> model overrides of the "tiny" preset (vocab 256, byte tokens)
SIZES = {
    "s": dict(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=96),
    "m": dict(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=160),
    "l": dict(d_model=96, n_layers=3, n_heads=4, n_kv_heads=2, d_ff=256),
}
DECAY, MIN_RATIO, LR, WARMUP = "20%", 0.1, 3e-3, 20
FULL = {"forks": (96, 192, 384, 768), "batch": 16, "seq": 64, "eval_batches": 8, "bootstrap": 100}
BOUNDED = {"forks": (12, 24, 36, 48), "batch": 4, "seq": 32, "eval_batches": 2, "bootstrap": 20}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--forks", default=None, help="main-branch fork steps, comma-separated (default 96,192,384,768; bounded 12,24,36,48)")
    p.add_argument("--seed", type=int, default=0, help="seed of every run")
    add_arguments_common(p, "scaling")
    add_executor_arguments(p, what="decay branch")


def config(size: str, sched: dict[str, Any], geom: dict[str, Any], seed: int, max_steps: int | None = None) -> RunConfig:
    ckpt = checkpoint_every(geom["forks"]) if max_steps is None else 0
    return small_config(seed, LR, sched, model=ModelConfig.preset("tiny", max_seq_len=max(64, geom["seq"]), **SIZES[size]),
                        batch_size=geom["batch"], seq_len=geom["seq"], max_steps=max_steps, ckpt_every=ckpt,
                        eval_batches=geom["eval_batches"])


def budgets(forks: tuple[int, ...]) -> list[int]:
    """End step of each decay branch (fork + DECAY of the budget, as ``riverbed branch`` computes it)."""
    return [k + parse_length(DECAY, k, 1) for k in forks]


def checkpoint_every(forks: tuple[int, ...]) -> int:
    """Main checkpoints at every fork and every budget (merges then sit at the decayed models'
    tokens), with several in between; falls back to the forks alone if that would mean tiny steps."""
    g = math.gcd(*forks, *budgets(forks))
    if g >= max(1, forks[0] // 8):
        return g
    g = math.gcd(*forks)
    return g // 4 if g % 4 == 0 else g


def wsd_tree(out: Path, size: str, geom: dict[str, Any], seed: int, data: Any, progress: bool,
             executor: Any = None) -> Path:
    warmup = min(WARMUP, geom["forks"][0] // 2)
    cfg = config(size, {"type": "warmup-stable", "warmup": warmup}, geom, seed)
    run = Run.create(out / f"wsd-{size}", cfg)
    # Main runs on to the largest budget so the merges can be compared with every decayed model
    # at the same tokens; the tree's cost (tokens_spent) counts main only up to the last fork.
    train_main(cfg, run.path, run, until_step=max(budgets(geom["forks"])), progress=progress, data=data)
    # The decay branches are independent: with an executor each is one job (riverbed.executors).
    reqs = plan_requests(run, list(geom["forks"]), "1-sqrt", DECAY, min_ratio=MIN_RATIO)
    run_requests(run, reqs, progress=progress, executor=executor)
    return run.path


def cosine_runs(out: Path, size: str, budgets: list[int], geom: dict[str, Any], seed: int, data: Any, progress: bool) -> list[Path]:
    paths = []
    warmup = min(WARMUP, geom["forks"][0] // 2)
    for steps in budgets:
        cfg = config(size, {"type": "cosine", "steps": steps, "warmup": warmup, "min_ratio": MIN_RATIO}, geom, seed, max_steps=steps)
        run = Run.create(out / f"cosine-{size}-{steps}", cfg)
        train_main(cfg, run.path, run, progress=progress, data=data)
        paths.append(run.path)
    return paths


def _split(points: Any) -> tuple[Any, Any]:
    """All but the largest-D point, and the largest-D point (held out)."""
    order = np.argsort(points.d, kind="stable")
    return points.take(order[:-1]), points.take(order[-1:])


def _err(pred: float, actual: float) -> float:
    return (pred - actual) / actual


def study(out: Path, geom: dict[str, Any], seed: int, progress: bool, executor: Any = None) -> dict[str, Any]:
    data = load_dataset(config("s", {"type": "constant"}, geom, seed).data)
    res: dict[str, Any] = {"geometry": {k: list(v) if isinstance(v, tuple) else v for k, v in geom.items()}, "decay": DECAY, "min_ratio": MIN_RATIO, "seed": seed, "sizes": {}}
    fit_pts, held = [], {}
    for size in SIZES:
        run = wsd_tree(out, size, geom, seed, data, progress, executor)
        pts = load_run(run, kinds=("decay",))
        train, test = _split(pts)
        fit_pts.append(train)
        held[size] = test
        fd = fit_law(train, "data")
        ms = merge_points(run, last=4)
        mtrain, _ = _split(ms.merged)
        fm = fit_law(mtrain, "data")
        actual = float(test.loss[0])
        d_test = float(test.d[0])
        res["sizes"][size] = {
            "n_params": float(pts.n[0]), "tokens": pts.d.tolist(), "loss": pts.loss.tolist(), "held_out": {"D": d_test, "loss": actual},
            "data_fit": fd.params, "data_theta": list(fd.theta), "data_pred": predict(fd, None, d_test).value, "data_err": _err(predict(fd, None, d_test).value, actual),
            "merge_rows": [r.to_json() for r in ms.rows], "merge_fit": fm.params,
            "merge_pred": predict(fm, None, d_test).value, "merge_err": _err(predict(fm, None, d_test).value, actual),
            "tokens_spent": _tree_tokens(run),
        }
    fc = fit_law(concat(fit_pts), "chinchilla", bootstrap=geom["bootstrap"], seed=seed)
    res["chinchilla"] = {"params": fc.params, "theta": list(fc.theta), "intervals": {k: list(v) for k, v in fc.intervals().items()}, "warnings": list(fc.warnings)}
    for size, test in held.items():
        est = predict(fc, float(test.n[0]), float(test.d[0]))
        res["sizes"][size].update(chin_pred=est.value, chin_lo=est.lo, chin_hi=est.hi, chin_err=_err(est.value, float(test.loss[0])))
    # the same study with independent cosine runs, smallest size
    small = next(iter(SIZES))
    wsd_pts = load_run(out / f"wsd-{small}", kinds=("decay",))
    budgets = sorted(int(round(d / (geom["batch"] * geom["seq"]))) for d in wsd_pts.d)
    cos_runs = cosine_runs(out, small, budgets, geom, seed, data, progress)
    cpts = concat([load_run(p, kinds=("cosine", "main")) for p in cos_runs])
    ctrain, ctest = _split(cpts)
    fcos = fit_law(ctrain, "data")
    cactual = float(ctest.loss[0])
    res["cosine"] = {
        "size": small, "budgets_steps": budgets, "tokens": cpts.d.tolist(), "loss": cpts.loss.tolist(),
        "data_fit": fcos.params, "data_theta": list(fcos.theta), "data_pred": predict(fcos, None, float(ctest.d[0])).value,
        "data_err": _err(predict(fcos, None, float(ctest.d[0])).value, cactual),
        "tokens_spent": float(np.sum(cpts.d)),
        "loss_minus_wsd": (cpts.loss[np.argsort(cpts.d)] - wsd_pts.loss[np.argsort(wsd_pts.d)]).tolist(),
    }
    return res


def _tree_tokens(run: Path) -> float:
    """Tokens the tree needs for its finished models: main up to the last fork plus each decay."""
    decays = [b for b in Run(run).branches if b.kind == "decay" and b.final is not None and b.fork is not None]
    return float(max(b.fork.tokens for b in decays) + sum(b.final.tokens - b.fork.tokens for b in decays))


def table(res: dict[str, Any]) -> str:
    lines = ["| size | N | held-out D | held-out loss | data law pred (err) | chinchilla pred [95% CI] (err) | merge-fit pred (err) | tokens trained |", "|---|---|---|---|---|---|---|---|"]
    for size, r in res["sizes"].items():
        lines.append(
            f"| {size} | {r['n_params']:.0f} | {r['held_out']['D']:.3g} | {r['held_out']['loss']:.4f} | {r['data_pred']:.4f} ({r['data_err']:+.2%}) | "
            f"{r['chin_pred']:.4f} [{r['chin_lo']:.4f}, {r['chin_hi']:.4f}] ({r['chin_err']:+.2%}) | {r['merge_pred']:.4f} ({r['merge_err']:+.2%}) | {r['tokens_spent']:.3g} |"
        )
    c = res["cosine"]
    wsd = res["sizes"][c["size"]]
    lines += ["", f"Cosine runs vs WSD tree, size {c['size']}:", "", "| study | held-out pred (err) | tokens trained |", "|---|---|---|"]
    lines.append(f"| WSD + decays | {wsd['data_pred']:.4f} ({wsd['data_err']:+.2%}) | {wsd['tokens_spent']:.3g} |")
    lines.append(f"| cosine per budget | {c['data_pred']:.4f} ({c['data_err']:+.2%}) | {c['tokens_spent']:.3g} ({c['tokens_spent'] / wsd['tokens_spent']:.2f}x) |")
    lines += ["", "cosine loss - WSD decay loss per budget: " + ", ".join(f"{x:+.4f}" for x in c["loss_minus_wsd"])]
    lines += ["", "chinchilla fit: " + ", ".join(f"{k}={v:.4g} [{res['chinchilla']['intervals'][k][0]:.3g}, {res['chinchilla']['intervals'][k][1]:.3g}]" for k, v in res["chinchilla"]["params"].items())]
    lines += ["", "merge vs decayed at the same tokens (gap = merge - decayed):"]
    for size, r in res["sizes"].items():
        lines.append(f"- {size}: " + ", ".join(f"D={m['decayed_tokens']:.3g}: {m['gap']:+.4f}" for m in r["merge_rows"]))
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    geom = dict(BOUNDED if bounded() else FULL)
    if args.forks:
        try:
            geom["forks"] = tuple(int(x) for x in args.forks.split(","))
        except ValueError:
            raise ConfigError(f"--forks={args.forks!r}: expected comma-separated steps like 100,200,400,800") from None
    if len(geom["forks"]) < 4 or sorted(geom["forks"]) != list(geom["forks"]) or geom["forks"][0] < 4:
        raise ConfigError(f"--forks={args.forks!r}: need at least 4 increasing fork steps, the first >= 4")
    executor = executor_from_args(args)  # before the output folder: a bad flag deletes nothing
    st = start(args, "scaling")
    out = st.out
    res = study(out / "runs", geom, args.seed, st.progress, executor)
    write_json(out / "results.json", res)
    md = table(res)
    write_text(out / "results.md", md)
    plot_scaling_study(res, out / "scaling.png")
    print(md)
    print(json.dumps({"out": str(out)}))
    return 0
