"""Chinchilla approach-3 fit on Epoch AI's 240 points: riverbed vs Epoch's scipy loop vs the floor.

    .venv/bin/python bench/scaling_fit.py                    # loop timed on 300 random starts, extrapolated
    .venv/bin/python bench/scaling_fit.py --loop-starts all  # the full 4,500-start loop (minutes)

- riverbed: ``fit_law`` over the full 4,500-start grid (batched L-BFGS + scipy polish).
- anchor: Epoch AI's notebook loop: one ``scipy.optimize.minimize(method="L-BFGS-B")`` per grid
  start on the same objective (summed Huber(1e-3) on log loss, finite-difference gradients), keep
  the lowest. With ``--loop-starts K`` only K random starts are run and the time is extrapolated
  to 4,500 (the output says so); the optimum is then the best of those K.
- floor: one L-BFGS-B polish (analytic gradient) from riverbed's best start: what a fit would
  cost if the right basin were known in advance.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "scaling" / "data" / "chinchilla_svg_extracted.csv"


def epoch_objective(params: np.ndarray, n: np.ndarray, d: np.ndarray, losses: np.ndarray, delta: float = 1e-3) -> float:
    # Epoch AI's notebook objective, verbatim in substance: LSE prediction, summed Huber.
    a, b, e, alpha, beta = params
    pred = np.log(np.exp(a - alpha * np.log(n)) + np.exp(b - beta * np.log(d)) + np.exp(e))
    r = np.log(losses) - pred
    return float(np.sum(np.where(np.abs(r) <= delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loop-starts", default="300", help="grid starts for the scipy loop: a number (random subset, time extrapolated) or 'all'")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random subset")
    ap.add_argument("--repeat", type=int, default=1, help="riverbed repetitions (best time reported)")
    ap.add_argument("--smoke", action="store_true", help="a seconds-long run at a toy size (make bench-smoke): checks the bench works, its figures mean nothing")
    args = ap.parse_args(argv)
    if args.smoke:
        args.loop_starts, args.repeat = "20", 1

    from rich.progress import Progress

    from riverbed.scaling import drop_highest, fit_law, load_csv
    from riverbed.scaling.laws import LAWS, objective_and_grad
    from riverbed.scaling.optimize import polish

    pts, _ = drop_highest(load_csv(DATA), 5)
    n, d, loss = pts.n, pts.d, pts.loss
    grid = LAWS["chinchilla"].grid()
    print(f"data: {len(pts)} points (Epoch AI's 245 minus the 5 highest-loss); grid: {len(grid)} starts; CPUs: {os.cpu_count()}; load avg {os.getloadavg()[0]:.1f}")

    # riverbed
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        fit = fit_law(pts, "chinchilla")
        times.append(time.perf_counter() - t0)
    t_rb = min(times)

    # floor: one polish from the best start, analytic gradient
    logx, logy = LAWS["chinchilla"].features_of(n, d), np.log(loss)

    def single(x: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = objective_and_grad(x[None], logx, logy, 2)
        return float(f[0]), g[0]

    start = np.array([fit.best_start[k] for k in LAWS["chinchilla"].param_names])
    t0 = time.perf_counter()
    polish(single, start)
    t_floor = time.perf_counter() - t0

    # anchor: Epoch's loop
    if args.loop_starts == "all":
        subset = np.arange(len(grid))
    else:
        k = int(args.loop_starts)
        subset = np.sort(np.random.default_rng(args.seed).choice(len(grid), size=min(k, len(grid)), replace=False))
    best_f, best_x = np.inf, None
    t0 = time.perf_counter()
    with Progress(transient=True) as bar:
        task = bar.add_task(f"scipy loop ({len(subset)} starts)", total=len(subset))
        for i in subset:
            res = minimize(epoch_objective, grid[i], args=(n, d, loss), method="L-BFGS-B")
            if res.fun < best_f:
                best_f, best_x = float(res.fun), res.x
            bar.advance(task)
    t_loop_run = time.perf_counter() - t0
    full = len(subset) == len(grid)
    t_loop = t_loop_run * len(grid) / len(subset)

    nat_loop = LAWS["chinchilla"].natural(best_x)
    rb = fit.params
    epoch = {"E": 1.8172, "A": 477.84, "B": 2143.86, "alpha": 0.3473, "beta": 0.3672}
    print()
    print(f"{'':10s} {'riverbed':>14s} {'scipy loop':>14s} {'Epoch (paper)':>14s}")
    for k in ("E", "A", "B", "alpha", "beta"):
        print(f"{k:10s} {rb[k]:14.6g} {float(nat_loop[k]):14.6g} {epoch[k]:14.6g}")
    print(f"{'objective':10s} {fit.objective:14.10g} {best_f:14.10g} {'':>14s}")
    print()
    loop_note = "measured" if full else f"extrapolated from {len(subset)} random starts ({t_loop_run:.1f} s measured)"
    print(f"riverbed fit (4,500 starts):      {t_rb:8.2f} s")
    print(f"scipy loop (4,500 starts):        {t_loop:8.2f} s  [{loop_note}]")
    print(f"floor (one polish, known basin):  {t_floor:8.3f} s")
    print(f"speedup riverbed vs loop:         {t_loop / t_rb:8.1f}x")
    print(f"riverbed / floor:                 {t_rb / t_floor:8.0f}x")
    same = abs(fit.objective - best_f) <= 1e-6 * best_f or fit.objective < best_f
    print(f"same optimum: {'yes' if same else 'NO'} (riverbed objective {'<=' if fit.objective <= best_f else '>'} loop objective)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
