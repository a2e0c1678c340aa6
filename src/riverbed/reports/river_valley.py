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
