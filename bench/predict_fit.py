"""Trajectory predictor on the MPL paper's 400M curves: fit time and the cost of the LD sum.

    PYTHONPATH=src .venv/bin/python bench/predict_fit.py

- fit: ``riverbed.predict.fit_curve_law`` on the paper's three training curves (cosine_24000,
  constant_24000, wsdcon_9), MPL and annealing-area law, median of 3; with the held-out error.
- LD sum: one MPL evaluation of cosine_72000 (546 eval points, 69,840 decay steps): the naive
  double loop of the MPL repository's evaluation (O(points x steps), one numpy sum per point),
  riverbed's exact vectorised form and its binned form (2048 bins, the default), with the binned
  form's largest relative deviation from the exact one.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from riverbed.predict import fit_curve_law, read_curve_csv
from riverbed.predict.laws import MPLTerms

DATA = Path(__file__).resolve().parents[1] / "tests" / "predict" / "data" / "mpl400"
TRAIN = ("cosine_24000", "constant_24000", "wsdcon_9")
TEST = ("constant_72000", "cosine_72000", "wsd_20000_24000", "wsdld_20000_24000", "wsdcon_3", "wsdcon_18")


def naive_ld_loss(lr, steps, W, L0, A, alpha, B, C, beta, gamma):
    # The reference: one O(t) sum per eval point, as the MPL repository's evaluate_mpl does.
    P = np.concatenate([[0.0], np.cumsum(lr)])
    out = []
    for n in steps:
        k = np.arange(max(W, 1), n)
        d = lr[k - 1] - lr[k]
        sk = P[n] - P[k]
        out.append(L0 + A * P[n] ** (-alpha) - B * np.sum(d * (1 - (C * lr[k] ** (-gamma) * sk + 1) ** (-beta))))
    return np.array(out)


def timed(fn, reps=3):
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each timing (median reported)")
    ap.add_argument("--smoke", action="store_true",
                    help="a seconds-long run (make bench-smoke): checks the bench works, its figures mean nothing")
    args = ap.parse_args()
    reps = 1 if args.smoke else args.reps
    curves = {n: read_curve_csv(DATA / f"{n}.csv") for n in TRAIN + TEST}
    fits = {}
    for law in ("mpl", "tissue"):
        t, fit = timed(lambda law=law: fit_curve_law([curves[n] for n in TRAIN], law), reps)
        fits[law] = fit
        errs = [np.mean(np.abs(fit.predict(curves[n]) - curves[n].loss) / curves[n].loss) for n in TEST]
        print(f"fit {law:6s}: {t:6.2f} s (median of {reps}), held-out mean relative error {100 * np.mean(errs):.3f} %")
    c = curves["cosine_72000"]
    p = fits["mpl"].params
    u = c.lr / fits["mpl"].lr_scale
    t_naive, ref = timed(lambda: naive_ld_loss(u, c.steps, c.warmup, **p), reps)
    t_exact, exact = timed(lambda: MPLTerms.build(u, c.steps, c.warmup, max_terms=10**9).loss(**p), reps)
    t_bin, binned = timed(lambda: MPLTerms.build(u, c.steps, c.warmup).loss(**p), reps)
    terms = MPLTerms.build(u, c.steps, c.warmup)
    t_eval, _ = timed(lambda: terms.loss(**p), reps=10)
    print(f"MPL on cosine_72000 ({c.steps.size} points): naive loop {t_naive:.3f} s, exact vectorised {t_exact:.3f} s "
          f"({t_naive / t_exact:.1f}x), binned build+eval {t_bin:.3f} s ({t_naive / t_bin:.1f}x), "
          f"binned eval alone {1000 * t_eval:.1f} ms ({t_naive / t_eval:.0f}x)")
    print(f"  exact vs naive max rel diff {np.max(np.abs(exact / ref - 1)):.1e}; binned vs exact {np.max(np.abs(binned / exact - 1)):.1e}")


if __name__ == "__main__":
    main()
