"""The [forecast] monitor's refit against the evaluation it rides on, per evaluation, on the tiny model.

    PYTHONPATH=src .venv/bin/python bench/forecast.py [--steps 400] [--eval-batches 4]

A tiny main branch (103K parameters, batch 8 x 64, eval every 10 steps on ``--eval-batches`` batches) trains
with ``[forecast]`` in two calibrations, each from the metrics rows it writes (``forecast_refit_s``: the
warm-started refit + forecast; ``eval_s``: that step's held-out evaluation, timed by the same monitor):

- prior: a law file's decay parameters, only L0 / A / alpha refitted on the main curve;
- decay branch: main trained to half the steps, a 1-sqrt decay branch from its middle, then main resumed with
  the whole law refitted on main + that branch at every evaluation.

Prints the medians and their ratio. The refit's cost does not grow with the model (it sees only the loss
curve); the evaluation's does, so the ratio falls as the model grows. Timings are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from riverbed.config import RunConfig, load_config_text
from riverbed.config.forecast import ForecastConfig
from riverbed.data import load_dataset
from riverbed.orchestration.drive import train_main
from riverbed.orchestration.fork import run_requests
from riverbed.predict.fit import CurveResiduals, LawFit
from riverbed.runs import Run
from riverbed.runs.fork import plan_requests
from riverbed.runs.metrics import read_metrics

TOML = """
[model]
preset = "tiny"
[schedule]
type = "warmup-stable"
warmup = 20
[optim]
lr = 0.006
[train]
batch_size = 8
seq_len = 64
ckpt_every = {ckpt}
eval_every = {eval_every}
eval_batches = {eval_batches}
log_every = 10
tensorboard = false
threads = 1
"""
PRIOR = LawFit("valley", dict(L0=1.5, A=2.0, alpha=0.3, B=0.05, lam=20.0, p=1.7, rho=1.8), 0.006,
               residuals=(CurveResiduals("prior", (10, 20), (3.0, 2.9), (3.01, 2.89)),))


def _rows(run_dir: Path) -> tuple[list[float], list[float], int]:
    rows = [r for r in read_metrics(run_dir / "branches" / "main" / "metrics.jsonl") if r.get("kind") == "forecast"]
    return [r["forecast_refit_s"] for r in rows], [r["eval_s"] for r in rows], len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--eval-batches", type=int, default=4)
    ap.add_argument("--smoke", action="store_true",
                    help="a seconds-long run (make bench-smoke): 60 steps, eval every 4 on 1 batch; its figures mean nothing")
    args = ap.parse_args()
    every = 4 if args.smoke else 10
    if args.smoke:
        args.steps, args.eval_batches = 60, 1
    base = load_config_text(TOML.format(eval_batches=args.eval_batches, eval_every=every, ckpt=15 if args.smoke else 50))
    data = load_dataset(base.data)
    tmp = Path(tempfile.mkdtemp(prefix="forecast-bench-"))
    try:
        prior = tmp / "prior.json"
        prior.write_text(PRIOR.to_json())
        results = {}
        cfg: RunConfig = base.replace(forecast=ForecastConfig(prior=str(prior)))
        run = Run.create(tmp / "prior-run", cfg)
        train_main(cfg, run.path, run, until_step=args.steps, progress=False, data=data)
        results["prior"] = _rows(run.path)
        half = args.steps // 2
        run = Run.create(tmp / "tree", base)
        train_main(base, run.path, run, until_step=half, progress=False, data=data)
        run_requests(run, plan_requests(run, [half // 2], "1-sqrt", half // 2), cfg=base, data=data, progress=False,
                     eval_every=every)
        cfg = base.replace(forecast=ForecastConfig())
        train_main(cfg, run.path, Run.open(run.path), until_step=args.steps, progress=False, data=data)
        results["decay branch"] = _rows(run.path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"tiny model, eval on {args.eval_batches} batches of 8 x 64, {args.steps} steps (load {os.getloadavg()[0]:.1f})")
    print(f"{'calibration':14s} {'forecasts':>9s} {'refit ms (median)':>18s} {'eval ms (median)':>17s} {'refit / eval':>13s}")
    for name, (refit, ev, n) in results.items():
        if not n:
            print(f"{name:14s} {0:9d}  (no usable fit)")
            continue
        r, e = statistics.median(refit), statistics.median(ev)
        print(f"{name:14s} {n:9d} {1000 * r:18.1f} {1000 * e:17.1f} {r / e:12.2f}x")


if __name__ == "__main__":
    main()
