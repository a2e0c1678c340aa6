"""Plots of a fit: loss against tokens per model size with the fitted curves, and the frontier.

>>> plot_fit(fit, "fit.png")                            # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from riverbed.checkpoints.atomic import atomic_path
from riverbed.scaling.fit import FitResult


def _sizes(fit: FitResult, max_sizes: int = 12) -> list[float]:
    sizes = np.unique(fit.points.n)
    if len(sizes) > max_sizes:  # e.g. Epoch's 240 points over ~40 sizes: show an even subset
        sizes = sizes[np.linspace(0, len(sizes) - 1, max_sizes).round().astype(int)]
    return [float(s) for s in sizes]


def plot_fit(fit: FitResult, path: str | Path, *, title: str | None = None, extra: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> Path:
    """Write a PNG: points and fitted curves (loss vs D per N) and, for ``chinchilla``, the frontier.

    ``extra`` maps a legend label to (D, loss) arrays drawn as open markers (e.g. held-out points).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = fit.law_def
    theta = np.asarray(fit.theta)
    two = spec.name == "chinchilla"
    fig, axes = plt.subplots(1, 2 if two else 1, figsize=(12 if two else 6.5, 4.8), squeeze=False)
    ax = axes[0, 0]
    pts = fit.points
    sizes = _sizes(fit) if two else [None]
    cmap = plt.get_cmap("viridis")
    d_lo, d_hi = pts.d.min() / 1.5, pts.d.max() * 1.5
    grid_d = np.geomspace(d_lo, d_hi, 200)
    for i, n in enumerate(sizes):
        color = cmap(i / max(1, len(sizes) - 1))
        sel = np.ones(len(pts), bool) if n is None else pts.n == n
        label = "points" if n is None else f"N={n:.3g}"
        ax.scatter(pts.d[sel], pts.loss[sel], s=14, color=color, label=label, zorder=3)
        ax.plot(grid_d, spec.predict(theta, n, grid_d), color=color, lw=1.2)
        if fit.bootstrap is not None and n is None:
            curves = np.array([spec.predict(t, n, grid_d) for t in fit.bootstrap])
            lo, hi = np.quantile(curves, [(1 - fit.ci) / 2, 1 - (1 - fit.ci) / 2], axis=0)
            ax.fill_between(grid_d, lo, hi, color=color, alpha=0.2, lw=0, label=f"{fit.ci:.0%} band")
    for label, (dx, ly) in (extra or {}).items():
        ax.scatter(dx, ly, s=40, facecolors="none", edgecolors="crimson", label=label, zorder=4)
    ax.set_xscale("log")
    ax.set_xlabel("D (tokens)")
    ax.set_ylabel("loss")
    p = fit.params
    ax.set_title(title or f"{spec.formula}\n" + ", ".join(f"{k}={v:.4g}" for k, v in p.items()), fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, which="both")
    if two and p["alpha"] > 0 and p["beta"] > 0:
        from riverbed.scaling.predict import optimal_allocation

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
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        ax2.set_xlabel("C (training FLOPs, 6ND)")
        ax2.set_ylabel("parameters / tokens")
        ax2.set_title("compute-optimal frontier", fontsize=9)
        ax2.legend(fontsize=7)
        ax2.grid(alpha=0.3, which="both")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
