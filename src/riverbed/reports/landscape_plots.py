"""Plots of the landscape probes (riverbed.landscape): a loss line, a loss plane, hill vs river.

matplotlib is loaded only when a figure is drawn (riverbed.reports.pyplot): the probes' Python API
and ``riverbed --help`` stay free of it. Every figure is written to a temporary sibling and renamed into place.

>>> from riverbed.reports.landscape_plots import plot_interpolation   # doctest: +SKIP
>>> plot_interpolation([("A -> B", result)], "line.png")             # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from riverbed.reports.pyplot import pyplot, save


def plot_interpolation(lines: Sequence[tuple[str, Any]], out: str | Path, *, title: str = "held-out loss along a line") -> Path:
    """One curve per (label, riverbed.landscape.Interpolation); the ends (alpha 0 and 1) marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, r in lines:
        ax.plot(r.alphas, r.losses, marker=".", label=label)
        ends = [(a, l) for a, l in zip(r.alphas, r.losses) if a in (0.0, 1.0)]
        ax.scatter([a for a, _ in ends], [l for _, l in ends], color="black", zorder=3)
    ax.axvspan(0.0, 1.0, color="0.93", zorder=0)
    ax.set_xlabel("alpha  (0 = first checkpoint, 1 = second)")
    ax.set_ylabel("held-out loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return save(fig, out, dpi=120)


def plot_plane(result: Any, out: str | Path, *, title: str = "held-out loss on the plane of three checkpoints") -> Path:
    """Filled contours of riverbed.landscape.Plane with each point marked and labelled (its
    distance off the plane in the label when it is not on it)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    cs = ax.contourf(result.xs, result.ys, result.losses, levels=24, cmap="viridis")
    ax.contour(result.xs, result.ys, result.losses, levels=12, colors="white", linewidths=0.4)
    fig.colorbar(cs, ax=ax, label="held-out loss")
    for p in result.points:
        marker = "*" if p.name == "merge" else ("s" if p.off_plane > 1e-6 else "o")
        ax.scatter([p.x], [p.y], marker=marker, s=90, color="red" if p.name == "merge" else "white", edgecolor="black", zorder=3)
        extra = f" (off {p.off_plane:.2g})" if p.off_plane > 1e-6 else ""
        ax.annotate(f"{p.name} {p.loss:.3f}{extra}", (p.x, p.y), textcoords="offset points", xytext=(6, 6),
                    color="white", fontsize=8)
    ax.set_xlabel("along B - A")
    ax.set_ylabel("along C - A (orthogonalised)")
    ax.set_title(title)
    fig.tight_layout()
    return save(fig, out, dpi=120)


def plot_hill(points: Sequence[Any], out: str | Path, *, title: str = "hill and river along the run") -> Path:
    """Two panels against tokens: checkpoint loss and decayed loss (river), and their gap (hill)."""
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 6.0), sharex=True)
    tokens = [p.tokens for p in points]
    top.plot(tokens, [p.loss for p in points], marker="o", label="checkpoint (constant LR)")
    top.plot(tokens, [p.decayed_loss for p in points], marker="o", label="after a short decay (river)")
    top.set_ylabel("held-out loss")
    top.legend()
    bottom.plot(tokens, [p.hill for p in points], marker="o", color="tab:red")
    bottom.set_ylabel("hill = drop in the decay")
    bottom.set_xlabel("tokens")
    top.set_title(title)
    fig.tight_layout()
    return save(fig, out, dpi=120)
