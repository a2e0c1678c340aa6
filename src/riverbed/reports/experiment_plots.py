"""The figures of the experiments (riverbed.experiments): spike recovery, continued training and
the scaling study. Each takes the experiment's results as plain values; matplotlib is imported
only when a figure is drawn (riverbed.reports.pyplot).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from riverbed.reports.pyplot import pyplot, save
from riverbed.scaling.laws import LAWS


def plot_spike(results: list[dict[str, Any]], path: Path, setup: Any, *, arms: Sequence[str], window: int, tol: float,
               smooth: Callable[[list[float]], list[float]]) -> Path:
    """Left: smoothed loss per arm (mean, band = min..max over seeds). Right: the same minus the
    reference run of the same seed, which removes the seed-to-seed spread of the trajectory.
    ``setup`` is the experiment's Setup (jump, cause, blip_len, lr, stable_lr); ``smooth`` its
    running mean over ``window`` steps."""
    plt = pyplot()

    colors = {"reference": "k", "none": "tab:red", "rollback": "tab:orange", "pma-init": "tab:blue"}
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    left = max(0, setup.jump - 100)  # the early descent is the same for every arm: show the spike
    refs = {r["seed"]: np.asarray(smooth(r["curve"])) for r in results if r["arm"] == "reference"}
    lo, hi = math.inf, -math.inf
    for arm in arms:
        rs = [r for r in results if r["arm"] == arm]
        if not rs:
            continue
        n = max(len(r["curve"]) for r in rs)
        arr, gap = np.full((len(rs), n), np.nan), np.full((len(rs), n), np.nan)
        for i, r in enumerate(rs):
            c = np.asarray(smooth(r["curve"]))
            arr[i, :len(c)] = np.where(np.isfinite(c), c, np.nan)
            ref = refs.get(r["seed"])
            if ref is not None:
                m = min(len(c), len(ref))
                gap[i, :m] = arr[i, :m] - ref[:m]
        x = np.arange(n)
        with np.errstate(all="ignore"):
            lo, hi = min(lo, float(np.nanmin(arr[:, left:]))), max(hi, float(np.nanmax(arr[:, left:])))
        passed, back = sum(r["passed"] for r in rs), sum(r["returned"] for r in rs)
        label = (f"{arm} (no spike)" if arm == "reference"
                 else f"{arm}: {passed}/{len(rs)} passed, {back}/{len(rs)} back")
        style = {"color": colors[arm], "lw": 1.0 if arm == "reference" else 1.5, "ls": "--" if arm == "reference" else "-"}
        for a, v in ((ax, arr), (ax2, gap)):
            with np.errstate(all="ignore"):
                a.plot(x, np.nanmean(v, axis=0), label=label, **style)
                if len(rs) > 1 and arm != "reference":
                    a.fill_between(x, np.nanmin(v, axis=0), np.nanmax(v, axis=0), color=colors[arm], alpha=0.15)
    ax.set_ylabel(f"training loss (mean of {window} steps)")
    if math.isfinite(lo) and math.isfinite(hi):
        ax.set_ylim(lo - 0.05, min(6.0, hi) + 0.15)
    ax2.set_ylabel("loss minus the reference run (same seed)")
    ax2.axhspan(-tol, tol, color="tab:green", alpha=0.12, label=f"within {tol:g} of the reference")
    what = f"LR {setup.stable_lr:g} -> {setup.lr:g}" + (f" for {setup.blip_len} steps" if setup.cause == "blip" else "")
    for a in (ax, ax2):
        a.set_xlim(left=left)
        a.set_xlabel("optimizer step (the trajectory that survived)")
        if setup.cause == "blip":
            a.axvspan(setup.jump, setup.jump + setup.blip_len, color="k", alpha=0.2)
        else:
            a.axvline(setup.jump, color="k", lw=0.8)
        a.legend(fontsize=8, loc="upper left" if a is ax2 else "lower left")
    ax.set_title(f"{what} at step {setup.jump}; tiny MoE (8 experts, top-2)", fontsize=10)
    ax2.set_title("band = min..max over seeds", fontsize=10)
    fig.tight_layout()
    return save(fig, path, dpi=120)


def plot_continued(results: list[dict[str, Any]], path: Path, *, arms: Sequence[str], last: int) -> Path:
    """Held-out loss (left) and gradient norm (right) of each arm over the continued run."""
    plt = pyplot()

    labels = {"last": "last checkpoint", "pma": f"PMA merge (SMA of last {last})"}
    colors = {"last": "tab:orange", "pma": "tab:blue"}
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for arm in arms:
        rs = [r for r in results if r["arm"] == arm]
        x = np.array([s for s, _ in rs[0]["eval"]])
        ev = np.array([[v for _, v in r["eval"]] for r in rs])
        a1.plot(x, ev.mean(0), marker=".", color=colors[arm], label=labels[arm])
        g = np.array([r["grad_norm"] for r in rs])
        k = 5  # a light moving average so the two curves can be told apart
        gs = np.array([np.convolve(row, np.ones(k) / k, mode="valid") for row in g])
        xs = np.arange(k, g.shape[1] + 1)
        a2.plot(xs, gs.mean(0), color=colors[arm], label=labels[arm])
        if len(rs) > 1:
            a1.fill_between(x, ev.min(0), ev.max(0), color=colors[arm], alpha=0.2)
            a2.fill_between(xs, gs.min(0), gs.max(0), color=colors[arm], alpha=0.2)
    a1.set_xlabel("continued-training step (Bible only)")
    a1.set_ylabel("held-out loss (Bible)")
    a1.set_title("Held-out loss after the data shift")
    a2.set_xlabel("continued-training step")
    a2.set_ylabel("gradient norm (5-step mean)")
    a2.set_title("Gradient norm")
    for a in (a1, a2):
        a.legend()
    fig.tight_layout()
    return save(fig, path, dpi=120)


def plot_scaling_study(res: dict[str, Any], path: Path) -> Path:
    """Left: every size's decay branches, merges and the chinchilla fit; right: the data law from
    WSD decays against independent cosine runs."""
    plt = pyplot()

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.8))
    chin, data_law = LAWS["chinchilla"], LAWS["data"]
    theta = np.array(res["chinchilla"]["theta"])  # log-space: finite even when A overflows
    for i, (size, r) in enumerate(res["sizes"].items()):
        d = np.array(r["tokens"])
        grid = np.geomspace(d.min() / 1.3, d.max() * 1.5, 100)
        color = f"C{i}"
        a1.scatter(d[:-1], r["loss"][:-1], color=color, label=f"{size} (N={r['n_params']:.2g})")
        a1.scatter([r["held_out"]["D"]], [r["held_out"]["loss"]], facecolors="none", edgecolors=color, s=80, label=f"{size} held out")
        a1.plot(grid, chin.predict(theta, r["n_params"], grid), color=color)
        a1.scatter([m["merge_tokens"] for m in r["merge_rows"]], [m["merge_loss"] for m in r["merge_rows"]], marker="x", color=color, alpha=0.6)
    a1.set(xscale="log", xlabel="D (tokens)", ylabel="held-out loss", title="WSD decay branches (dots), PMA merges (x), chinchilla fit")
    a1.legend(fontsize=7, ncol=2)
    c = res["cosine"]
    w = res["sizes"][c["size"]]
    for label, d, loss, th, color in (("WSD decays", w["tokens"], w["loss"], w["data_theta"], "C0"), ("cosine runs", c["tokens"], c["loss"], c["data_theta"], "C3")):
        d = np.array(d)
        grid = np.geomspace(d.min() / 1.3, d.max() * 1.5, 100)
        a2.scatter(d, loss, color=color, label=label)
        a2.plot(grid, data_law.predict(np.array(th), None, grid), color=color)
    a2.set(xscale="log", xlabel="D (tokens)", ylabel="held-out loss", title=f"size {c['size']}: data law from WSD decays vs cosine runs")
    a2.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path, dpi=110)
