"""Plot of `riverbed experiment decay-vs-merge`: each method's held-out loss minus the trained
decay's, per fork, with the standard error over seeds as error bars.

>>> from riverbed.reports.decay_merge_plot import plot_decay_vs_merge   # doctest: +SKIP
>>> plot_decay_vs_merge(summary, "decay_vs_merge.png")                  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from riverbed.io.atomic import atomic_path


def plot_decay_vs_merge(summary: Sequence[dict[str, Any]], out: str | Path, *, title: str = "") -> Path:
    """Grouped bars: one group per fork, one bar per method (gap to the decay); written atomically."""
    # matplotlib is an optional, slow import: only the plotting path pays for it.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    methods = list(summary[0]["gap"]) if summary else []
    fig, ax = plt.subplots(figsize=(9, 5))
    width = 0.8 / max(1, len(methods))
    colours = plt.get_cmap("tab10")
    for j, m in enumerate(methods):
        xs = [i + (j - (len(methods) - 1) / 2) * width for i in range(len(summary))]
        ys = [s["gap"][m]["mean"] for s in summary]
        err = [s["gap"][m]["se"] or 0.0 for s in summary]
        ax.bar(xs, ys, width, yerr=err, capsize=3, label=m, color=colours(j))
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(summary)), [f"fork {s['fork']}\n(end {s['end']})" for s in summary])
    ax.set_ylabel("held-out loss − trained decay's")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)
    return out
