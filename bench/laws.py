"""Law bench: every schedule-aware loss law riverbed has, on the Multi-Power Law paper's 400M curves.

    PYTHONPATH=src .venv/bin/python bench/laws.py [--reps 3] [--json]

Each law is fitted (``riverbed.predict.fit_curve_law``, its defaults) on the paper's training split
(cosine_24000, constant_24000, wsdcon_9) and scored on the six held-out curves at every logged
point after the warmup:

- PredE: the mean over curves of each curve's mean relative error (the paper's metric);
- WorstE: the mean over curves of each curve's largest relative error;
- R^2 of the predictions over all held-out points pooled;
- fit seconds (median of ``--reps``; timings are noisy on a shared machine: state the load).

The last row is what the MPL repository reports for its own fit at 400M (0.168 % / 0.995 %, R^2 0.9978).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from riverbed.predict import LAWS, fit_curve_law, read_curve_csv
from riverbed.predict.laws import LAW_SPECS

DATA = Path(__file__).resolve().parents[1] / "tests" / "predict" / "data" / "mpl400"
TRAIN = ("cosine_24000", "constant_24000", "wsdcon_9")
TEST = ("constant_72000", "cosine_72000", "wsd_20000_24000", "wsdld_20000_24000", "wsdcon_3", "wsdcon_18")
PAPER = {"pred_e": 0.168, "worst_e": 0.995, "r2": 0.9978}


def score(fit, curves) -> dict[str, float | dict[str, float]]:
    means, worsts, ys, ps = {}, [], [], []
    for name in TEST:
        c = curves[name]
        pred = fit.predict(c)
        rel = np.abs(pred - c.loss) / c.loss
        means[name] = 100 * float(rel.mean())
        worsts.append(100 * float(rel.max()))
        ys.append(c.loss)
        ps.append(pred)
    y, p = np.concatenate(ys), np.concatenate(ps)
    r2 = 1.0 - float(np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2))
    return {"pred_e": float(np.mean(list(means.values()))), "worst_e": float(np.mean(worsts)), "r2": r2, "per_curve": means}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=1, help="fits per law for the timing (median)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--smoke", action="store_true",
                    help="a seconds-long run (make bench-smoke): one fit per law on 8 points per curve; its figures mean nothing")
    args = ap.parse_args()
    curves = {n: read_curve_csv(DATA / f"{n}.csv") for n in TRAIN + TEST}
    rows = {}
    for law in list(LAWS)[:2] if args.smoke else LAWS:
        times = []
        for _ in range(1 if args.smoke else args.reps):
            t = time.perf_counter()
            fit = fit_curve_law([curves[n] for n in TRAIN], law, **({"max_points": 8, "max_nfev": 20} if args.smoke else {}))
            times.append(time.perf_counter() - t)
        rows[law] = {**score(fit, curves), "fit_s": statistics.median(times), "params": len(fit.params)}
    load = os.getloadavg()[0]
    if args.json:
        print(json.dumps({"laws": rows, "paper_mpl": PAPER, "load": load}, indent=1))
        return
    print(f"400M curves: fitted on {', '.join(TRAIN)}; scored on the six held-out curves (load {load:.1f})")
    print(f"{'law':50s} {'params':>6s} {'PredE %':>8s} {'WorstE %':>9s} {'R^2':>7s} {'fit s':>6s}  PredE / paper")
    for law, r in rows.items():
        print(f"{LAW_SPECS[law].title + ' [' + law + ']':50s} {r['params']:6d} {r['pred_e']:8.3f} {r['worst_e']:9.3f} "
              f"{r['r2']:7.4f} {r['fit_s']:6.2f}  {r['pred_e'] / PAPER['pred_e']:.2f}x")
    print(f"{'MPL repository, its own fit (reported)':50s} {7:6d} {PAPER['pred_e']:8.3f} {PAPER['worst_e']:9.3f} {PAPER['r2']:7.4f}")
    print("\nPredE per held-out curve (%):")
    print(f"{'curve':20s}" + "".join(f"{law:>9s}" for law in rows))
    for name in TEST:
        print(f"{name:20s}" + "".join(f"{rows[law]['per_curve'][name]:9.3f}" for law in rows))


if __name__ == "__main__":
    main()
