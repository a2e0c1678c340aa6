"""Plot of predicted loss curves beside the curves the law was fitted on.

The fitted curves (the main branch, calibration decays) are drawn as measured points; each
prediction as a dashed line with its bootstrap band (5-95 %), against tokens.

>>> from riverbed.reports.predict_plot import plot_predictions     # doctest: +SKIP
>>> plot_predictions([main_curve], [prediction], "branch.png")      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from riverbed.predict.curves import Curve
from riverbed.predict.runs import Prediction
from riverbed.reports.pyplot import pyplot, save


def plot_predictions(measured: Sequence[Curve], predictions: Sequence[Prediction], out: str | Path, *,
                     tokens_per_step: int = 1, title: str = "") -> Path:
    """Measured curves as points, predictions as dashed lines with bands; written atomically."""
    plt = pyplot()

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
    if predictions:
        # Frame the predictions with as much of the measured curves before them as they span.
        lo_t = min(float(p.tokens[0]) for p in predictions)
        hi_t = max(float(p.tokens[-1]) for p in predictions)
        measured_hi = max((float(c.steps[-1] * tokens_per_step) for c in measured if c.steps.size), default=hi_t)
        ax.set_xlim(max(0.0, lo_t - (hi_t - lo_t)), max(hi_t, measured_hi) + 0.02 * (hi_t - lo_t))
        ys = [y for c in measured for t, y in zip(c.steps * tokens_per_step, c.loss) if t >= lo_t - (hi_t - lo_t) and np.isfinite(y)]
        ys += [y for p in predictions for y in np.concatenate([p.lo, p.hi])]
    if ys:
        ys.sort()
        lo, hi = ys[0], ys[-1] if predictions else ys[int(0.9 * (len(ys) - 1))]
        pad = 0.05 * max(hi - lo, 1e-6)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("tokens" if tokens_per_step > 1 else "steps")
    ax.set_ylabel("eval loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save(fig, out, dpi=120)
