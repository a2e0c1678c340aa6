"""Trajectory predictor on the MPL paper's 400M curves: fit time and the cost of the LD sum.

    PYTHONPATH=src .venv/bin/python bench/predict_fit.py

- fit: ``riverbed.predict.fit_curve_law`` on the paper's three training curves (cosine_24000,
  constant_24000, wsdcon_9), MPL and annealing-area law, median of 3; with the held-out error.
- the paper's own procedure, side by side with riverbed's MPL fit in one run (``--paper``): the
  fitting recipe the MPL paper and repository describe, implemented here -- initial L0, A, alpha
  from a linear regression of log(loss - min + 0.01) on log S1, a grid over (B, C, beta, gamma)
  scored on the full objective, L-BFGS from the best grid point, then AdamW steps -- on the exact
  LD sum (every LR decrease, every eval point) in torch autograd, the Huber(1e-3) loss on log
  loss; its time and held-out error beside riverbed's.
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


#: The grid over the LD parameters (LR-scale units): 16 points around the 400M fits' magnitudes.
PAPER_GRID = ((0.1, 0.3), (1e-3, 1e-2), (0.7, 1.5), (0.4, 0.8))


def paper_fit(train, lbfgs_iter: int, adam_steps: int, grid_points: int | None = None) -> dict[str, float]:
    """The MPL paper's fitting procedure (grid + L-BFGS + AdamW) on the exact LD sum; LR-scale units."""
    import itertools

    import torch

    scale = float(max(c.lr.max() for c in train))
    tensors = []
    for c in train:
        u = c.lr / scale
        pref = np.concatenate([[0.0], np.cumsum(u)])
        n = c.steps[c.known]
        k = np.arange(max(c.warmup, 1), int(n.max()))
        d = u[k - 1] - u[k]
        k, d = k[d != 0], d[d != 0]
        gap = pref[n][:, None] - pref[k][None, :]
        mask = (k[None, :] < n[:, None]).astype(float)
        tensors.append(tuple(torch.tensor(a, dtype=torch.float64) for a in
                             (pref[n], u[k], d, np.where(mask > 0, gap, 0.0), mask, np.log(c.loss[c.known]))))

    def objective(t: torch.Tensor) -> torch.Tensor:
        l0, log_a, alpha, log_b, log_c, beta, gamma = t
        total = t.new_zeros(())
        for s1, eta, d, gap, mask, logy in tensors:
            g = 1 - (torch.exp(log_c) * eta ** (-gamma) * gap + 1) ** (-beta)
            pred = l0 + torch.exp(log_a) * s1 ** (-alpha) - torch.exp(log_b) * (mask * d * g).sum(dim=1)
            r = torch.log(pred) - logy
            total = total + torch.where(r.abs() <= 1e-3, 0.5 * r * r, 1e-3 * (r.abs() - 0.5e-3)).sum()
        return total

    # 1. L0, A, alpha: a line through log(loss - min + 0.01) against log S1, as the paper's code starts
    ys = np.concatenate([c.loss[c.known] for c in train])
    s1 = np.concatenate([np.cumsum(c.lr / scale)[c.steps[c.known] - 1] for c in train])
    lo = ys.min()
    slope, intercept = np.polyfit(np.log(s1), np.log(ys - lo + 0.01), 1)
    head = [lo - 0.01, intercept, -slope]
    # 2. a grid over the LD parameters, scored on the full objective
    best, best_f = None, np.inf
    with torch.no_grad():
        for b, cc, beta, gamma in list(itertools.product(*PAPER_GRID))[:grid_points]:
            t = torch.tensor(head + [np.log(b), np.log(cc), beta, gamma], dtype=torch.float64)
            f = float(objective(t))
            if np.isfinite(f) and f < best_f:
                best, best_f = t, f
    theta = best.clone().requires_grad_(True)
    # 3. L-BFGS from the best grid point
    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=lbfgs_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        f = objective(theta)
        f.backward()
        return f

    opt.step(closure)
    # 4. AdamW steps
    adam = torch.optim.AdamW([theta], lr=1e-3, weight_decay=0.0)
    for _ in range(adam_steps):
        adam.zero_grad()
        f = objective(theta)
        f.backward()
        adam.step()
    t = theta.detach().numpy()
    return {"L0": t[0], "A": float(np.exp(t[1])), "alpha": t[2], "B": float(np.exp(t[3])), "C": float(np.exp(t[4])),
            "beta": t[5], "gamma": t[6], "lr_scale": scale, "objective": float(objective(theta.detach()))}


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
    ap.add_argument("--paper", action="store_true", help="also time the MPL paper's own fitting procedure")
    ap.add_argument("--paper-lbfgs", type=int, default=30, help="L-BFGS iterations of the paper's procedure")
    ap.add_argument("--paper-adam", type=int, default=100, help="AdamW steps of the paper's procedure")
    ap.add_argument("--smoke", action="store_true",
                    help="a seconds-long run (make bench-smoke): checks the bench works, its figures mean nothing")
    args = ap.parse_args()
    reps = 1 if args.smoke else args.reps
    curves = {n: read_curve_csv(DATA / f"{n}.csv") for n in TRAIN + TEST}
    fits, fit_times = {}, {}
    for law in ("mpl", "tissue"):
        t, fit = timed(lambda law=law: fit_curve_law([curves[n] for n in TRAIN], law), reps)
        fit_times[law] = [t]
        fits[law] = fit
        errs = [np.mean(np.abs(fit.predict(curves[n]) - curves[n].loss) / curves[n].loss) for n in TEST]
        print(f"fit {law:6s}: {t:6.2f} s (median of {reps}), held-out mean relative error {100 * np.mean(errs):.3f} %")
    if args.paper or args.smoke:
        lb, ad, gp = (1, 1, 1) if args.smoke else (args.paper_lbfgs, args.paper_adam, None)
        t_paper, pp = timed(lambda: paper_fit([curves[n] for n in TRAIN], lb, ad, gp), 1)
        prm = {k: v for k, v in pp.items() if k not in ("lr_scale", "objective")}
        errs = [np.mean(np.abs(naive_ld_loss(curves[n].lr / pp["lr_scale"], curves[n].steps, curves[n].warmup, **prm)
                               - curves[n].loss) / curves[n].loss) for n in TEST]
        t_rb = statistics.median(fit_times["mpl"])
        print(f"paper's procedure (grid + {lb} L-BFGS + {ad} AdamW, exact LD sum): {t_paper:.2f} s, held-out mean relative "
              f"error {100 * np.mean(errs):.3f} %, objective {pp['objective']:.6g}")
        print(f"riverbed's MPL fit vs the paper's procedure: {t_rb:.2f} s vs {t_paper:.2f} s = {t_paper / t_rb:.1f}x faster")
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
