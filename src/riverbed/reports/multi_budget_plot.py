"""The figure of `riverbed experiment multi-budget` (riverbed.experiments.multi_budget).

One panel per data set: held-out loss against the *cumulative* tokens each method has spent
(seed 0's evaluations as thin lines; cosine's runs one after another, as they would be paid for),
and each method's finished models, mean ± s.e. over seeds, at the tokens spent for all budgets up
to theirs. matplotlib is imported lazily (only this figure needs it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from riverbed.reports.pyplot import pyplot, save

STYLE = {"wsd": ("WSD + decay branches", "tab:blue", "o"), "wsds": ("WSD-S", "tab:red", "s"),
         "cyclic": ("cyclic cosine", "tab:green", "^"), "cosine": ("cosine, one run per budget", "tab:gray", "D")}


def plot_multi_budget(res: dict[str, Any], out: str | Path) -> Path:
    plt = pyplot()
    datas = list(res["summary"])
    fig, axes = plt.subplots(1, len(datas), figsize=(7 * len(datas), 4.8), squeeze=False)
    for ax, data in zip(axes[0], datas):
        s, first = res["summary"][data], res["runs"][data][0]
        ys_all = []
        for m, (label, color, marker) in STYLE.items():
            pts = s["methods"][m]
            xs, ys = [p["spent_tokens"] for p in pts], [p["loss"]["mean"] for p in pts]
            ys_all += ys
            for seg in first[m]["curves"]:
                if seg:
                    ax.plot(*zip(*seg), color=color, alpha=0.35, lw=1)
            ax.errorbar(xs, ys, yerr=[p["loss"]["se"] or 0.0 for p in pts], color=color, marker=marker, ls="none",
                        capsize=3, ms=7, label=label)
        # frame the finished models (the early curve is far above them); the optimum if near
        span = max(ys_all) - min(ys_all) or 0.1
        bottom = min(ys_all) - 0.2 * span
        h = res["entropy_rate"].get(data)
        if h is not None:
            ax.axhline(h, color="black", ls="--", lw=1, label="entropy rate (optimum)")
            bottom = min(bottom, h - 0.05 * span) if h > min(ys_all) - 1.5 * span else bottom
        ax.set_ylim(bottom, max(ys_all) + 0.6 * span)
        for t in res["budgets"]:
            ax.axvline(t * res["geometry"]["batch"] * res["geometry"]["seq"], color="black", alpha=0.15, lw=0.8)
        ax.set_xlabel("cumulative tokens spent (all budgets so far)")
        ax.set_ylabel("held-out loss")
        ax.set_title(f"{data}: finished model per budget at equal total compute")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, out, dpi=120)
