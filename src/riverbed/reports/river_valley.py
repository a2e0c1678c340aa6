"""The figure of `riverbed experiment bigram` (riverbed.experiments.bigram): four panels.

Loss against tokens (main and decay, with the entropy rate), the decay's drop per context-entropy
bucket, the two interpolation lines, and the top Hessian eigenvalue along the run. matplotlib is
imported lazily (only this figure needs it).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from riverbed.reports.pyplot import pyplot, save


def plot_bigram_experiment(results: Sequence[dict[str, Any]], out: str | Path) -> Path:
    plt = pyplot()
    fig, ((a1, a2), (a3, a4)) = plt.subplots(2, 2, figsize=(11, 8))
    for i, r in enumerate(results):
        a1.plot(*zip(*r["main"]), marker=".", color="black", alpha=0.6, label="main (constant LR)" if i == 0 else None)
        fork = [p for p in r["main"] if p[0] <= r["decay"][0][0]][-1:]  # the branch starts at the fork
        a1.plot(*zip(*(fork + list(r["decay"]))), marker=".", color="tab:red", alpha=0.8,
                label="decay branch" if i == 0 else None)
        s, t = r["interp_stable"], r["interp_toward_decay"]
        a3.plot(s["alphas"], s["losses"], color="tab:blue", alpha=0.8,
                label=f"stable step {s['from_step']} -> {s['to_step']}" if i == 0 else None)
        a3.plot(t["alphas"], t["losses"], color="tab:red", alpha=0.8, label="fork -> decayed" if i == 0 else None)
        main = [p for p in r["sharpness"] if p["branch"] == "main"]
        a4.plot([p["step"] for p in main], [p["top"] for p in main], marker="o", color="black", alpha=0.6,
                label="main" if i == 0 else None)
        last = r["sharpness"][-1]
        a4.scatter([last["step"]], [last["top"]], color="tab:red", zorder=3, label="decayed" if i == 0 else None)
    a1.axhline(results[0]["entropy_rate"], color="tab:green", ls="--", label="entropy rate (optimum)")
    a1.set_xlabel("tokens")
    a1.set_ylabel("held-out loss")
    a1.set_title("WSD on bigram data")
    a1.legend()
    buckets = [b for b in ("deterministic", "low", "mid", "high") if all(b in r["buckets_decayed"] for r in results)]
    drops = [statistics.fmean(r["buckets_fork"][b] - r["buckets_decayed"][b] for r in results) for b in buckets]
    a2.bar(buckets, drops, color="tab:purple")
    a2.set_ylabel("loss drop in the decay")
    a2.set_title("Which contexts the decay improves")
    a3.set_xlabel("alpha")
    a3.set_ylabel("held-out loss")
    a3.set_title("Interpolation")
    a3.legend()
    a4.set_xlabel("step")
    a4.set_ylabel("top Hessian eigenvalue")
    a4.set_title("Sharpness along the run")
    a4.legend()
    fig.tight_layout()
    return save(fig, out, dpi=120)


def plot_lr_sweep(summary: dict[str, Any], runs: Sequence[dict[str, Any]], out: str | Path) -> Path:
    """`riverbed experiment lr-sweep`: loss before and after the decay, and the drop, against the
    stable LR (mean ± s.e. over seeds, each seed a faint dot); a third panel, the curves per LR."""
    plt = pyplot()
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(15, 4.4))
    rows = [r for r in summary["rows"] if "drop" in r]
    lrs = [r["lr"] for r in rows]

    def bars(ax: Any, key: str, label: str, color: str) -> None:
        ax.errorbar(lrs, [r[key]["mean"] for r in rows], yerr=[r[key]["se"] or 0.0 for r in rows], marker="o",
                    color=color, capsize=3, label=label)

    bars(a1, "stable", "end of stable phase (constant LR)", "black")
    bars(a1, "constant", "constant LR, same tokens as the decay", "tab:gray")
    bars(a1, "decayed", "after the decay", "tab:red")
    if summary.get("entropy_rate") is not None:
        a1.axhline(summary["entropy_rate"], color="tab:green", ls="--", label="entropy rate (optimum)")
    bars(a2, "drop", "vs the fork", "tab:gray")
    bars(a2, "drop_vs_constant", "vs constant LR (same tokens)", "tab:purple")
    if rows and all("high" in r["bucket_drop"] for r in rows):
        a2.errorbar(lrs, [r["bucket_drop"]["high"]["mean"] for r in rows], yerr=[r["bucket_drop"]["high"]["se"] or 0.0 for r in rows],
                    marker="s", color="tab:blue", capsize=3, label="vs constant LR, high-entropy contexts")
    ok = [r for r in runs if not r["diverged"]]
    a1.scatter([r["lr"] for r in ok], [r["decayed_loss"] for r in ok], color="tab:red", alpha=0.3, s=10)
    a2.scatter([r["lr"] for r in ok], [r["drop_vs_constant"] for r in ok], color="tab:purple", alpha=0.3, s=10)
    dead = [r["lr"] for r in summary["rows"] if r["diverged"]]
    for lr in dead:
        a1.axvline(lr, color="tab:orange", ls=":", label="diverged (some seed)" if lr == dead[0] else None)
    cmap = plt.get_cmap("viridis")
    for r in runs:
        if r["seed"] != 0:
            continue
        c = cmap(lrs.index(r["lr"]) / max(1, len(lrs) - 1)) if r["lr"] in lrs else "tab:orange"
        pts = [p for p in r["main"] if p[1] is not None]
        if pts:
            a3.plot(*zip(*pts), color=c, alpha=0.8, label=f"LR {r['lr']:g}")
        if not r["diverged"] and r["decay"]:
            fork = [q for q in pts if q[0] < r["decay"][0][0]][-1:]  # the decay starts at the fork, not main's end
            a3.plot(*zip(*(fork + list(r["decay"]))), color=c, ls="--")
    for ax in (a1, a2):
        ax.set_xscale("log")
        ax.set_xlabel("stable LR")
        ax.legend(fontsize=8)
    a1.set_ylabel("held-out loss")
    a1.set_title("Before and after the decay")
    a2.set_ylabel("loss")
    a2.set_title("Drop in the decay")
    a3.set_xlabel("tokens")
    a3.set_ylabel("held-out loss")
    a3.set_title("Seed 0: main (solid), decay (dashed)")
    h = summary.get("entropy_rate")
    ends = [r["constant_loss"] for r in runs if r["seed"] == 0 and r.get("constant_loss") is not None]
    if h is not None:
        a3.axhline(h, color="tab:green", ls="--")
        if ends:  # frame the end of training (the first evaluations are far above it)
            a3.set_ylim(h - 0.02, max(ends) + 3 * (max(ends) - h))
    a3.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, out, dpi=120)
