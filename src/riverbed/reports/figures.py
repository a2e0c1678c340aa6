"""The report's figures as matplotlib ``Figure`` objects (tests inspect their lines and labels).

Conventions shared by every figure: the main branch (or a WSD-S / cosine branch, the run's one
long line) is solid black, decay branches are coloured from their fork point, PMA merges are a
dashed orange line, WSD-S decayed checkpoints are red stars. Axes carry units; a fit is drawn
solid over its data range and dashed where it extrapolates, with the data range shaded.

>>> fig = loss_figure(collect_run("runs/tiny"))      # doctest: +SKIP
>>> [line.get_label() for line in fig.axes[0].lines]  # doctest: +SKIP
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from riverbed.reports.collect import RunData
from riverbed.reports.pyplot import pyplot
from riverbed.reports.run_plots import Curves

# matplotlib loads only when a figure is drawn (riverbed.reports.pyplot): reading a run for `riverbed report --help` or a JSON
# answer should not pay its import time.

LONG_KINDS = ("main", "wsds", "cyclic", "cosine")
X_LABELS = {"tokens": "tokens", "flops": "training FLOPs (cumulative along the lineage)"}
X_NAMES = {"tokens": "tokens", "flops": "training FLOPs"}
LOSS_LABEL = "held-out loss (nats/token)"
PMA_STYLE = {"color": "darkorange", "linestyle": "--", "linewidth": 1.6, "marker": "s", "markersize": 3}
FORECAST_STYLE = {"color": "purple", "linestyle": ":", "linewidth": 1.6, "marker": "^", "markersize": 3}
MILESTONE_STYLE = {"color": "crimson", "marker": "*", "markersize": 12, "linestyle": "none", "zorder": 5}
RUN_COLOURS = ("black", "tab:blue", "tab:red", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive")


# A tEXt chunk naming riverbed as the writer: a report replaces a PNG beside its page only when it
# carries this (or the page itself is riverbed's), never a user's own figure of the same name.
PNG_GENERATOR = {"Software": "riverbed report"}
_PNG_MARK = b"tEXtSoftware\x00riverbed report"


def png_bytes(fig: Any, dpi: int = 110) -> bytes:
    """The figure as PNG bytes, marked as riverbed's; the figure is closed (reports build many)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata=PNG_GENERATOR)
    pyplot().close(fig)
    return buf.getvalue()


def is_report_png(path: Path) -> bool:
    """Whether the PNG at ``path`` was written by a riverbed report (its header carries the mark)."""
    try:
        with open(path, "rb") as fh:
            return _PNG_MARK in fh.read(4096)
    except OSError:
        return False


def _label(c: Curves) -> str:
    return c.name if c.kind in ("main", "decay") else f"{c.name} ({c.kind})"


def _styles(curves: Sequence[Curves]) -> dict[str, dict[str, Any]]:
    cmap = pyplot().get_cmap("viridis")
    others = [c for c in curves if c.kind not in LONG_KINDS]
    out: dict[str, dict[str, Any]] = {}
    for c in curves:
        if c.kind in LONG_KINDS:
            out[c.name] = {"color": "black", "linewidth": 2.0, "zorder": 3}
        else:
            i = others.index(c)
            out[c.name] = {"color": cmap(0.1 + 0.8 * i / max(1, len(others) - 1)), "linewidth": 1.6}
    return out


def _legend(ax: Any) -> None:
    """Legend outside the axes, on the right: with many branches it would hide the curves."""
    if ax.lines:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _zoom(ax: Any, values: Sequence[float]) -> bool:
    """Limit the loss axis to the lowest 90 % of evaluations (random-init losses dwarf the rest).

    Returns True when it zoomed. A loss range of more than a decade goes on a log axis instead.
    """
    vals = sorted(v for v in values if np.isfinite(v))
    if len(vals) < 2:
        return False
    if vals[0] > 0 and vals[-1] / vals[0] > 10:
        ax.set_yscale("log")
        return False
    hi = vals[int(0.9 * (len(vals) - 1))]
    lo = vals[0]
    if hi >= vals[-1]:
        return False
    pad = 0.05 * max(hi - lo, 1e-6)
    ax.set_ylim(lo - pad, hi + pad)
    return True


def lr_figure(data: RunData) -> Any:
    """Learning rate against tokens, one line per branch."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(11, 3.6))
    styles = _styles(data.curves)
    for c in data.curves:
        if c.lr:
            ax.plot(c.lr_tokens, c.lr, label=_label(c), **styles[c.name])
    ax.set_xlabel("tokens")
    ax.set_ylabel("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.set_title(f"{data.label}: learning-rate schedule of every branch")
    ax.grid(alpha=0.3)
    _legend(ax)
    fig.tight_layout()
    return fig


def _x(c: Curves, series: str, x: str) -> list[float]:
    return getattr(c, f"{series}_{x}")


def loss_figure(data: RunData, *, x: str = "tokens") -> Any:
    """Held-out loss against tokens (or FLOPs): every branch, PMA merges, decay forecasts, WSD-S decayed points."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(11, 5.2))
    styles = _styles(data.curves)
    values: list[float] = []
    for c in data.curves:
        if c.loss:
            ax.plot(_x(c, "loss", x), c.loss, marker="o", markersize=2.5, label=_label(c), **styles[c.name])
            values += c.loss
        if c.pma_loss:
            ax.plot(_x(c, "pma", x), c.pma_loss, label=f"{c.name}: PMA merge (pma_eval_loss)", **PMA_STYLE)
            values += c.pma_loss
        if c.forecast_loss:
            xs = _x(c, "forecast", x)
            ax.plot(xs, c.forecast_loss, label=f"{c.name}: forecast of a decay started then (at its end)", **FORECAST_STYLE)
            ax.fill_between(xs, c.forecast_lo, c.forecast_hi, color=FORECAST_STYLE["color"], alpha=0.15, linewidth=0)
            values += c.forecast_loss
    if data.milestones:
        xs = [m.point.tokens if x == "tokens" else m.point.flops for m in data.milestones if m.point.eval_loss is not None]
        ys = [m.point.eval_loss for m in data.milestones if m.point.eval_loss is not None]
        ax.plot(xs, ys, label="WSD-S / cyclic decayed checkpoints", **MILESTONE_STYLE)
        values += ys
    zoomed = _zoom(ax, values)
    ax.set_xlabel(X_LABELS[x])
    ax.set_ylabel(LOSS_LABEL + (" (zoomed)" if zoomed else ""))
    ax.set_title(f"{data.label}: held-out loss against {X_NAMES[x]}")
    ax.grid(alpha=0.3)
    _legend(ax)
    fig.tight_layout()
    return fig


def fit_figure(fit: Any, *, title: str = "") -> Any:
    """A one-size ``data`` fit on log-log axes: points, the law, its bootstrap band, the data range.

    The curve is solid inside the observed token range and dashed where it extrapolates (down to
    a third of the smallest D, up to ten times the largest); the data range is shaded.
    """
    plt = pyplot()
    law, theta, pts = fit.law_def, np.asarray(fit.theta), fit.points
    fig, ax = plt.subplots(figsize=(9, 4.6))
    d_lo, d_hi = float(pts.d.min()), float(pts.d.max())
    grid = np.geomspace(d_lo / 3, d_hi * 10, 300)
    n = float(pts.n[0]) if "N" in law.features else None
    pred = law.predict(theta, n, grid)
    inside = (grid >= d_lo) & (grid <= d_hi)
    ax.axvspan(d_lo, d_hi, color="0.85", alpha=0.45, linewidth=0, label="data range (observed D)", zorder=0)
    for edge in (d_lo, d_hi):
        ax.axvline(edge, color="0.45", linestyle=":", linewidth=1, zorder=1)
    ax.plot(grid[inside], pred[inside], color="tab:blue", linewidth=2, label="fit (data range)")
    for side in (grid < d_lo, grid > d_hi):
        ax.plot(grid[side], pred[side], color="tab:blue", linewidth=1.5, linestyle="--",
                label="fit (extrapolated)" if side[-1] else "_nolegend_")
    if fit.bootstrap is not None and len(fit.bootstrap):
        curves = np.array([law.predict(t, n, grid) for t in fit.bootstrap])
        with np.errstate(invalid="ignore"):
            lo, hi = np.nanquantile(curves, [(1 - fit.ci) / 2, 1 - (1 - fit.ci) / 2], axis=0)
        ax.fill_between(grid, lo, hi, color="tab:blue", alpha=0.18, linewidth=0, label=f"{fit.ci:.0%} bootstrap band")
    ax.plot(pts.d, pts.loss, "o", color="black", markersize=5, label="finished points", zorder=4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("D (tokens)")
    ax.set_ylabel(LOSS_LABEL)
    p = fit.params
    ax.set_title(title or f"{law.formula}: " + ", ".join(f"{k}={v:.4g}" for k, v in p.items()), fontsize=10)
    ymin, ymax = float(np.min(pts.loss)), float(np.max(pts.loss))
    ax.set_ylim(ymin / 1.3, ymax * 1.3)  # a band that explodes far out must not flatten the data
    from matplotlib.ticker import FormatStrFormatter  # lazy: loads matplotlib, which only drawing needs

    # Less than a decade of loss: label the minor ticks too, as plain numbers (not 3x10^0).
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def compare_figure(runs: Sequence[RunData], *, x: str = "tokens", series: str = "loss") -> Any:
    """Several runs overlaid: one colour per run, the long branch solid, decay branches thinner.

    ``series`` is ``loss`` (held-out loss, PMA merges and decayed checkpoints too) or ``lr``.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(11, 5.2 if series == "loss" else 3.6))
    values: list[float] = []
    for i, data in enumerate(runs):
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        labelled = False
        for c in data.curves:
            ys = c.loss if series == "loss" else c.lr
            if not ys:
                continue
            long = c.kind in LONG_KINDS
            style = {"color": colour, "linewidth": 2.0 if long else 1.1, "alpha": 1.0 if long else 0.75}
            label = f"{data.label}" if not labelled else "_nolegend_"
            labelled = True
            xs = _x(c, "loss" if series == "loss" else "lr", x)
            ax.plot(xs, ys, label=label, **({"marker": "o", "markersize": 2} if series == "loss" else {}), **style)
            if series == "loss":
                values += ys
                if c.pma_loss:
                    ax.plot(_x(c, "pma", x), c.pma_loss, color=colour, linestyle="--", linewidth=1.2,
                            label=f"{data.label}: PMA merge")
                    values += c.pma_loss
        if series == "loss" and data.milestones:
            ms = [m for m in data.milestones if m.point.eval_loss is not None]
            ax.plot([m.point.tokens if x == "tokens" else m.point.flops for m in ms], [m.point.eval_loss for m in ms],
                    color=colour, marker="*", markersize=11, linestyle="none", label=f"{data.label}: decayed checkpoints")
            values += [m.point.eval_loss for m in ms]
    ax.set_xlabel(X_LABELS[x])
    if series == "loss":
        zoomed = _zoom(ax, values)
        ax.set_ylabel(LOSS_LABEL + (" (zoomed)" if zoomed else ""))
        ax.set_title(f"held-out loss against {X_NAMES[x]}")
    else:
        ax.set_ylabel("learning rate")
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        ax.set_title(f"learning rate against {X_NAMES[x]}")
    ax.grid(alpha=0.3)
    _legend(ax)
    fig.tight_layout()
    return fig
