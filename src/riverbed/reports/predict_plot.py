"""Plot of predicted loss curves beside the curves the law was fitted on.

The fitted curves (the main branch, calibration decays) are drawn as measured points; each
prediction as a dashed line with its 95 % band (bootstrap or linearised), against tokens; a
prediction made with a forced (unreliable) fit says so in its legend. :func:`plot_ranking` draws a
best-decay search: each option's predicted final loss with its interval, against decay length.

>>> from riverbed.reports.predict_plot import plot_predictions     # doctest: +SKIP
>>> plot_predictions([main_curve], [prediction], "branch.png")      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from riverbed.predict.curves import Curve
from riverbed.predict.ranking import DecayRanking
from riverbed.predict.replay import Replay
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
        label = f"{p.name} ({p.law}, final {p.final:.4f} {p.interval_text()})" + (" FORCED: unreliable fit" if p.forced else "")
        ax.plot(p.tokens, p.loss, "--", color=col, linewidth=1.8, label=label)
        if np.all(np.isfinite(p.lo)) and np.all(np.isfinite(p.hi)):
            ax.fill_between(p.tokens, p.lo, p.hi, color=col, alpha=0.25, linewidth=0)
        ys.extend(p.loss.tolist())
    if predictions:
        # Frame the predictions with as much of the measured curves before them as they span.
        lo_t = min(float(p.tokens[0]) for p in predictions)
        hi_t = max(float(p.tokens[-1]) for p in predictions)
        measured_hi = max((float(c.steps[-1] * tokens_per_step) for c in measured if c.steps.size), default=hi_t)
        ax.set_xlim(max(0.0, lo_t - (hi_t - lo_t)), max(hi_t, measured_hi) + 0.02 * (hi_t - lo_t))
        ys = [y for c in measured for t, y in zip(c.steps * tokens_per_step, c.loss) if t >= lo_t - (hi_t - lo_t) and np.isfinite(y)]
        ys += [y for p in predictions for y in np.concatenate([p.lo, p.hi, p.loss]) if np.isfinite(y)]
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


def plot_ranking(ranking: DecayRanking, out: str | Path) -> Path:
    """A best-decay search: predicted final loss (95 % interval as error bars) against decay length, one
    line per shape; the best option's interval shaded across, so the options inside it stand out."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(9, 5.5))
    shapes = list(dict.fromkeys(o.shape for o in ranking.options))
    colours = plt.get_cmap("viridis")
    for i, shape in enumerate(shapes):
        opts = sorted((o for o in ranking.options if o.shape == shape), key=lambda o: o.length)
        x = np.array([o.length for o in opts], float)
        y = np.array([o.final_loss for o in opts])
        lo = np.array([o.lo for o in opts])
        hi = np.array([o.hi for o in opts])
        col = colours(i / max(1, len(shapes) - 1))
        err = np.where(np.isfinite(lo) & np.isfinite(hi), np.stack([y - lo, hi - y]), 0.0)
        ax.errorbar(x * (1 + 0.01 * (i - len(shapes) / 2)), y, yerr=err, marker="o", markersize=3, capsize=2, color=col, label=shape)
    best = ranking.options[0]
    if np.isfinite(best.lo) and np.isfinite(best.hi):
        ax.axhspan(best.lo, best.hi, color="grey", alpha=0.2, linewidth=0, label=f"best's 95 % interval ({ranking.tied} other(s) inside)")
    ax.scatter([best.length], [best.final_loss], s=120, facecolors="none", edgecolors="red", zorder=5, label=f"best: {best.shape}, {best.length} steps")
    ax.set_xlabel("decay length (steps)")
    ax.set_ylabel(f"predicted final eval loss at step {ranking.budget}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    title = f"best decay at {ranking.budget} steps ({ranking.law}, 95 % interval {ranking.interval})"
    ax.set_title(title + ("\nFORCED: unreliable fit" if ranking.forced else ""))
    fig.tight_layout()
    return save(fig, Path(out), dpi=120)


def plot_forecasts(replay: Replay, out: str | Path) -> Path:
    """The forecast monitor replayed (riverbed.predict.replay): the main branch's eval curve, and for each eval
    point the forecast decay's end (where it would end, what it would reach, its 5-95 % band), joined by a line;
    the decay branches it was checked against as red crosses."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(9, 5.5))
    k = replay.main.known
    ax.plot(replay.main.steps[k], replay.main.loss[k], marker="o", markersize=2.5, linewidth=1.0, color="black",
            label="main branch (measured)")
    if replay.forecasts:
        end = np.array([f.step + f.decay_steps for f in replay.forecasts], float)
        y = np.array([f.loss for f in replay.forecasts])
        ax.plot(end, y, "--", color="tab:blue", linewidth=1.6,
                label=f"forecast: a {replay.shape} decay over {replay.decay_fraction:.0%} of the budget, at its end")
        ax.fill_between(end, [f.lo for f in replay.forecasts], [f.hi for f in replay.forecasts], color="tab:blue", alpha=0.2,
                        linewidth=0, label="5-95 % band (the law's residuals on the run so far)")
    if replay.checks:
        ax.scatter([c.end for c in replay.checks], [c.measured for c in replay.checks], marker="x", s=60, color="red", zorder=5,
                   label="decay branches (measured)")
    ax.set_xlabel("steps")
    ax.set_ylabel("eval loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    title = f"{replay.law} forecast along {Path(replay.source).name}"
    ax.set_title(title + ("\nFORCED: unreliable fit" if replay.forced else ""))
    fig.tight_layout()
    return save(fig, Path(out), dpi=120)
