"""Plot of predicted loss curves beside the curves the law was fitted on.

The fitted curves (the main branch, calibration decays) are drawn as measured points; each
prediction as a dashed line with its bootstrap band (5-95 %), against tokens.

>>> from riverbed.reports.predict_plot import plot_predictions     # doctest: +SKIP
>>> plot_predictions([main_curve], [prediction], "branch.png")      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from riverbed.checkpoints.atomic import atomic_path
from riverbed.predict.curves import Curve
from riverbed.predict.runs import Prediction


def plot_predictions(measured: Sequence[Curve], predictions: Sequence[Prediction], out: str | Path, *,
                     tokens_per_step: int = 1, title: str = "") -> Path:
    """Measured curves as points, predictions as dashed lines with bands; written atomically."""
    # matplotlib is an optional, slow import: only the plotting path pays for it.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    ys = []
    for i, c in enumerate(measured):
        k = c.known
        style = {"color": "black"} if i == 0 else {}
        ax.plot(c.steps[k] * tokens_per_step, c.loss[k], marker="o", markersize=2.5, linewidth=1.0, label=f"{c.name} (measured)", **style)
        ys.extend(c.loss[k].tolist())
    colours = plt.get_cmap("plasma")
    for i, p in enumerate(predictions):
        col = colours(0.15 + 0.7 * i / max(1, len(predictions) - 1))
        ax.plot(p.tokens, p.loss, "--", color=col, linewidth=1.8, label=f"{p.name} ({p.law}, final {p.final:.4f})")
        if p.final_std > 0:
            ax.fill_between(p.tokens, p.lo, p.hi, color=col, alpha=0.25, linewidth=0)
        ys.extend(p.loss.tolist())
    if ys:
        ys.sort()
        lo, hi = ys[0], ys[int(0.9 * (len(ys) - 1))]
        pad = 0.05 * max(hi - lo, 1e-6)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("tokens" if tokens_per_step > 1 else "steps")
    ax.set_ylabel("eval loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)
    return out
