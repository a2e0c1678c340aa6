"""Heatmap of `riverbed merge-sweep`: held-out loss against N (rows) and V (columns), one panel per
method on one shared colour scale, whose colour bar carries the references as lines: the
checkpoint the merges end at and, where one was forked there, the decayed branch.

>>> from riverbed.reports.sweep_plot import plot_merge_sweep   # doctest: +SKIP
>>> plot_merge_sweep(result, "sweep.png")                      # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from riverbed.reports.pyplot import pyplot, save


def plot_merge_sweep(result: Any, out: str | os.PathLike[str]) -> Path:
    """Write the heatmap of a :class:`riverbed.training.merge_sweep.SweepResult` to ``out`` (atomically)."""
    plt = pyplot()
    import numpy as np  # lazy: with matplotlib, only for drawing

    methods = list(dict.fromkeys(c.method for c in result.cells))
    ns = sorted({c.n for c in result.cells})
    vs = sorted({c.every for c in result.cells})
    grids = {m: np.full((len(ns), len(vs)), np.nan) for m in methods}
    for c in result.cells:
        if c.eval_loss is not None and math.isfinite(c.eval_loss):
            grids[c.method][ns.index(c.n), vs.index(c.every)] = c.eval_loss
    refs = [("last checkpoint", result.last_loss, "black")]
    if result.decayed_loss is not None:
        refs.append((f"decayed ({result.decayed_branch})", result.decayed_loss, "tab:red"))
    values = [x for g in grids.values() for x in g[np.isfinite(g)]] + [r[1] for r in refs]
    lo, hi = min(values), max(values)
    hi = hi if hi > lo else lo + 1e-6
    fig, axes = plt.subplots(1, len(methods), figsize=(2.5 + 1.1 * len(vs) * len(methods), 2.6 + 0.55 * len(ns)), squeeze=False,
                             layout="constrained")
    best = result.best
    for ax, m in zip(axes[0], methods):
        im = ax.imshow(grids[m], cmap="viridis_r", vmin=lo, vmax=hi, aspect="auto")
        for i, n in enumerate(ns):
            for j, v in enumerate(vs):
                x = grids[m][i, j]
                text = "n/a" if not np.isfinite(x) else f"{x:.4f}"
                bold = best is not None and (best.method, best.n, best.every) == (m, n, v)
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if np.isfinite(x) and x > (lo + hi) / 2 else "black",
                        fontweight="bold" if bold else "normal")
        ax.set_xticks(range(len(vs)), [str(v) for v in vs])
        ax.set_yticks(range(len(ns)), [str(n) for n in ns])
        ax.set_xlabel("V (steps apart)")
        ax.set_title(m.upper() + (f" (alpha {result.alpha:g})" if m == "ema" else ""))
    axes[0][0].set_ylabel("N (checkpoints)")
    bar = fig.colorbar(im, ax=axes[0].tolist(), label="held-out loss")
    handles = []
    for label, y, colour in refs:
        handles.append(bar.ax.axhline(y, color=colour, linewidth=2.5, label=f"{label}: {y:.4f}"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    fig.suptitle(f"merge recipes ending at step {result.at} of {Path(result.run).name} ({result.branch})", fontsize=10)
    return save(fig, out)
