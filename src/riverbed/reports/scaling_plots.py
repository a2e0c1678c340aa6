"""Plots of a fit: loss against tokens per model size with the fitted curves, and the frontier.

>>> plot_fit(fit, "fit.png")                            # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from riverbed.reports.pyplot import pyplot, save
from riverbed.scaling.fit import FitResult
from riverbed.scaling.predict import optimal_allocation


def _sizes(fit: FitResult, max_sizes: int = 12) -> list[float]:
    sizes = np.unique(fit.points.n)
    if len(sizes) > max_sizes:  # e.g. Epoch's 240 points over ~40 sizes: show an even subset
        sizes = sizes[np.linspace(0, len(sizes) - 1, max_sizes).round().astype(int)]
    return [float(s) for s in sizes]


def _mark_beyond(ax, lo: float, hi: float, x0: float, x1: float) -> None:
    """Shade the x ranges outside [lo, hi] (the data) and label the upper one as extrapolation."""
    kw = dict(color="0.6", alpha=0.15, lw=0)
    if x0 < lo:
        ax.axvspan(x0, lo, **kw)
    if x1 > hi:
        ax.axvspan(hi, x1, label=f"beyond the data (up to {x1 / hi:.3g}x)", **kw)
    ax.axvline(hi, color="0.4", lw=0.8, ls=":")


def plot_fit(fit: FitResult, path: str | Path, *, title: str | None = None, extra: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> Path:
    """Write a PNG: points and fitted curves (loss vs D per N) and, for ``chinchilla``, the frontier.

    ``extra`` maps a legend label to (D, loss) arrays drawn as open markers (e.g. held-out points).
    """
    return save(fit_figure(fit, title=title, extra=extra), path, format="png")


def fit_figure(fit: FitResult, *, title: str | None = None, extra: dict[str, tuple[np.ndarray, np.ndarray]] | None = None):
    """The matplotlib Figure of :func:`plot_fit`: log-log loss vs D (solid over the data, dashed
    and shaded beyond it, bootstrap band over the data range only) and the frontier panel."""
    plt = pyplot()
    from matplotlib.ticker import FormatStrFormatter  # lazy: loads matplotlib, which only drawing needs

    spec = fit.law_def
    theta = np.asarray(fit.theta)
    two = spec.name == "chinchilla"
    fig, axes = plt.subplots(1, 2 if two else 1, figsize=(12 if two else 6.5, 4.8), squeeze=False)
    ax = axes[0, 0]
    pts = fit.points
    sizes = _sizes(fit) if two else [None]
    cmap = plt.get_cmap("viridis")
    d_min, d_max = float(pts.d.min()), float(pts.d.max())
    # The data's D range exactly (so the band starts and ends at the data), 1.5x either side.
    grid_d = np.unique(np.concatenate([np.geomspace(d_min / 1.5, d_min, 25), np.geomspace(d_min, d_max, 150), np.geomspace(d_max, d_max * 1.5, 25)]))
    inside = (grid_d >= d_min) & (grid_d <= d_max)
    shown = [pts.loss]  # the y range follows the data and the fit inside it, never a runaway band
    for i, n in enumerate(sizes):
        color = cmap(i / max(1, len(sizes) - 1))
        sel = np.ones(len(pts), bool) if n is None else pts.n == n
        label = "points" if n is None else f"N={n:.3g}"
        ax.scatter(pts.d[sel], pts.loss[sel], s=14, color=color, label=label, zorder=3)
        curve = spec.predict(theta, n, grid_d)
        shown.append(curve[inside])
        # Solid over the data's D range, dashed where the law is extrapolated.
        ax.plot(grid_d, np.where(inside, curve, np.nan), color=color, lw=1.2)
        ax.plot(grid_d, np.where(inside, np.nan, curve), color=color, lw=1.0, ls="--")
        if fit.bootstrap is not None and n is None:
            with np.errstate(all="ignore"):
                curves = np.array([spec.predict(t, n, grid_d[inside]) for t in fit.bootstrap])
                lo, hi = np.nanquantile(np.where(np.isfinite(curves), curves, np.nan), [(1 - fit.ci) / 2, 1 - (1 - fit.ci) / 2], axis=0)
            ax.fill_between(grid_d[inside], lo, hi, color=color, alpha=0.2, lw=0, label=f"{fit.ci:.0%} band (data range)")
    for label, (dx, ly) in (extra or {}).items():
        ax.scatter(dx, ly, s=40, facecolors="none", edgecolors="crimson", label=label, zorder=4)
        shown.append(np.asarray(ly, dtype=np.float64))
    _mark_beyond(ax, d_min, d_max, grid_d[0], grid_d[-1])
    ax.set_xscale("log")
    ax.set_yscale("log")  # losses are positive and the law is a power law: log axes on both
    vals = np.concatenate([np.ravel(v) for v in shown])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    ax.set_ylim(vals.min() / 1.05, vals.max() * 1.05)
    plain = FormatStrFormatter("%.3g")  # a narrow log range: plain numbers, not 3.8x10^0
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.set_xlim(grid_d[0], grid_d[-1])
    ax.set_xlabel("D (tokens)")
    ax.set_ylabel("loss (log scale)")
    p = fit.params
    ax.set_title(title or f"{spec.formula}\n" + ", ".join(f"{k}={v:.4g}" for k, v in p.items()), fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, which="both")
    if two and p["alpha"] > 0 and p["beta"] > 0:
        ax2 = axes[0, 1]
        c_obs = 6 * pts.n * pts.d
        flops = np.geomspace(c_obs.min() / 10, c_obs.max() * 1e3, 100)
        n_opt, d_opt = optimal_allocation(p["A"], p["B"], p["alpha"], p["beta"], flops)
        ax2.plot(flops, n_opt, color="C0", label="N_opt")
        ax2.plot(flops, d_opt, color="C1", label="D_opt")
        if fit.bootstrap is not None:
            nat = spec.natural(fit.bootstrap)
            q = [(1 - fit.ci) / 2, 1 - (1 - fit.ci) / 2]
            ns, ds = optimal_allocation(nat["A"][:, None], nat["B"][:, None], nat["alpha"][:, None], nat["beta"][:, None], flops[None])
            for arr, color in ((ns, "C0"), (ds, "C1")):
                lo, hi = np.nanquantile(arr, q, axis=0)
                ax2.fill_between(flops, lo, hi, color=color, alpha=0.2, lw=0)
        ax2.scatter(c_obs, pts.n, s=8, color="C0", alpha=0.4, label="observed N")
        ax2.axhline(pts.n.max(), color="C0", lw=0.6, ls=":", label=f"largest N ({pts.n.max():.3g})")
        _mark_beyond(ax2, float(c_obs.min()), float(c_obs.max()), flops[0], flops[-1])
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        ax2.set_xlabel("C (training FLOPs, 6ND)")
        ax2.set_ylabel("parameters / tokens")
        ax2.set_title("compute-optimal frontier (shaded: beyond the data's C)", fontsize=9)
        ax2.legend(fontsize=7)
        ax2.grid(alpha=0.3, which="both")
    if fit.warnings:
        # The fit's caveats (few degrees of freedom, unidentifiable parameters) travel with the figure.
        fig.text(0.01, 0.01, "\n".join(f"warning: {w}" for w in fit.warnings), fontsize=6.5, color="darkred", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.045 * len(fit.warnings), 1, 1))
    return fig
