"""The LR schedule that minimises a fitted law's predicted final loss: free-form, never rising after the warmup.

The schedule after the warmup is a non-increasing sequence written as a product of factors in
[0, 1] at ``knots`` points (denser towards the end, where the decay happens), interpolated
linearly to one LR per step:

    v_j = m + (1 - m) * prod_{i <= j} f_i,   f_i in [0, 1],   m = min_lr / peak_lr,

so the constraint (no rise, never below the min LR, never above the peak) is the box
``0 <= f <= 1`` and scipy's L-BFGS-B solves it (gradients by finite differences: one law
evaluation of the final point per knot). It starts from the best of the baselines (cosine, WSD with
linear and 1-sqrt decays at their best decay fraction), so it ends no worse than they do under the
law up to the knots' resolution; the result reports each baseline beside it. The warmup is riverbed's
linear warmup to the peak (as the baselines have it).

>>> opt = optimize_schedule(fit, steps=2000, warmup=100, peak_lr=3e-3)       # doctest: +SKIP
>>> opt.final_loss, opt.schedule()                                         # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize

from riverbed.io.progress import Progress
from riverbed.predict.curves import Curve, PredictError
from riverbed.predict.fit import LawFit
from riverbed.schedules import WSD, Cosine, Schedule, Tabulated, WarmupStable, schedule_from_spec, schedule_to_spec

KNOTS = 64
FRACTIONS = tuple(round(0.05 * i, 2) for i in range(1, 21))
WSD_SHAPES = ("linear", "1-sqrt")
DECIMALS = 7  # the written multipliers; the reported loss is the law's on exactly these


@dataclass(frozen=True)
class Baseline:
    """A named schedule at its best decay fraction under the law."""

    name: str
    final_loss: float
    decay_fraction: float
    schedule: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"final_loss": self.final_loss, "decay_fraction": self.decay_fraction, "schedule": self.schedule}


@dataclass(frozen=True)
class OptimalSchedule:
    """The optimised schedule, its predicted final loss with an interval, and the baselines under the same law."""

    law: str
    steps: int
    warmup: int
    peak_lr: float
    min_lr: float
    multipliers: np.ndarray
    """LR / peak LR of every step (warmup included): what the schedule spec holds."""
    final_loss: float
    lo: float
    hi: float
    interval: str
    """How [lo, hi] was obtained."""
    baselines: tuple[Baseline, ...] = field(default_factory=tuple)
    forced: bool = False
    """The law's fit was unreliable and kept by --force: the optimum inherits its doubt."""

    @property
    def lr(self) -> np.ndarray:
        return self.peak_lr * self.multipliers

    def schedule(self) -> Tabulated:
        return Tabulated(tuple(float(v) for v in self.multipliers), warmup=self.warmup)

    def to_dict(self) -> dict[str, Any]:
        best = min(self.baselines, key=lambda b: b.final_loss) if self.baselines else None
        return {
            "law": self.law, "forced": self.forced, "steps": self.steps, "warmup_steps": self.warmup, "peak_lr": self.peak_lr,
            "min_lr": self.min_lr,
            "final_loss": {"value": self.final_loss, "lo": self.lo, "hi": self.hi, "interval": self.interval},
            "lr": [float(v) for v in self.lr],
            "schedule": schedule_to_spec(self.schedule()),
            "baselines": {b.name: b.to_dict() for b in self.baselines},
            "gain_vs_best_baseline": None if best is None else best.final_loss - self.final_loss,
        }


def final_loss(fit: LawFit, lr: np.ndarray, warmup: int) -> float:
    """The law's predicted loss after ``len(lr)`` updates with the per-update LRs ``lr``."""
    n = len(lr)
    return float(fit.predict(Curve("schedule", np.asarray(lr, float), np.array([n]), np.array([math.nan]), warmup))[0])


def _check(steps: int, warmup: int, peak_lr: float, min_lr: float) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise PredictError(f"--steps: must be an integer >= 2, got {steps!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or not 0 <= warmup <= steps - 2:
        raise PredictError(f"--warmup-steps: must be an integer in [0, steps - 2] = [0, {steps - 2}], got {warmup!r}")
    if not (isinstance(peak_lr, (int, float)) and math.isfinite(peak_lr) and peak_lr > 0):
        raise PredictError(f"--peak-lr: must be a positive number, got {peak_lr!r}")
    if not (isinstance(min_lr, (int, float)) and math.isfinite(min_lr) and 0 <= min_lr < peak_lr):
        raise PredictError(f"--min-lr: must be >= 0 and below the peak LR {peak_lr:g}, got {min_lr!r}")


def baseline_schedules(steps: int, warmup: int, min_ratio: float,
                       fractions: Sequence[float] = FRACTIONS) -> list[tuple[str, float, Schedule]]:
    """(name, decay fraction, schedule): cosine over the whole run, WSD with each shape at each decay fraction."""
    out: list[tuple[str, float, Schedule]] = [("cosine", 1.0, Cosine(steps, warmup=warmup, min_ratio=min_ratio))]
    post = steps - warmup
    for shape in WSD_SHAPES:
        for f in fractions:
            d = min(max(1, round(f * post)), post)
            out.append((f"wsd-{shape}", round(d / post, 4), WSD(warmup, post - d, d, shape=shape, min_ratio=min_ratio)))
    return out


def best_baselines(fit: LawFit, steps: int, warmup: int, peak_lr: float, min_lr: float = 0.0,
                   fractions: Sequence[float] = FRACTIONS) -> tuple[Baseline, ...]:
    """Cosine and, for each WSD decay shape, the decay fraction with the lowest predicted final loss."""
    _check(steps, warmup, peak_lr, min_lr)
    best: dict[str, Baseline] = {}
    for name, frac, sched in baseline_schedules(steps, warmup, min_lr / peak_lr, fractions):
        loss = final_loss(fit, peak_lr * np.array(sched.values(steps)), warmup)
        if name not in best or loss < best[name].final_loss:
            best[name] = Baseline(name, loss, frac, schedule_to_spec(sched))
    return tuple(best.values())


def _knot_positions(post: int, knots: int) -> np.ndarray:
    u = np.linspace(0.0, 1.0, min(knots, post))
    return np.unique(np.round((post - 1) * (1.0 - (1.0 - u) ** 2)).astype(np.int64))


def _multipliers(f: np.ndarray, t: np.ndarray, post: int, warm: np.ndarray, m: float) -> np.ndarray:
    v = m + (1.0 - m) * np.cumprod(f)
    return np.concatenate([warm, np.interp(np.arange(post), t, v)])


def _factors(mult_post: np.ndarray, t: np.ndarray, m: float) -> np.ndarray:
    # The factors that reproduce a non-increasing schedule at the knots (clipped off 0, so no factor is dead).
    v = np.clip((mult_post[t] - m) / (1.0 - m), 1e-6, 1.0)
    return np.clip(v / np.concatenate([[1.0], v[:-1]]), 1e-3, 1.0)


def _interval(fit: LawFit, loss: float, lr: np.ndarray, warmup: int, boot: Sequence[LawFit]) -> tuple[float, float, str]:
    if boot:
        ens = np.array([final_loss(b, lr, warmup) for b in boot])
        return float(np.percentile(ens, 5)), float(np.percentile(ens, 95)), f"5-95 % of {len(boot)} bootstrap refits"
    rel = np.concatenate([(np.asarray(r.loss) - np.asarray(r.pred)) / np.asarray(r.pred) for r in fit.residuals]) \
        if fit.residuals else np.zeros(0)
    if rel.size < 2:
        raise PredictError("the law file has no fitted points to size an interval with (refit it with `riverbed predict fit`)")
    return (loss * (1 + float(np.percentile(rel, 5))), loss * (1 + float(np.percentile(rel, 95))),
            "5-95 % of the fit's relative residuals on its calibration curves")


def optimize_schedule(fit: LawFit, steps: int, *, warmup: int = 0, peak_lr: float, min_lr: float = 0.0,
                      knots: int = KNOTS, max_iter: int = 200, bootstrap: Sequence[LawFit] = (),
                      fractions: Sequence[float] = FRACTIONS, progress: bool = False, force: bool = False) -> OptimalSchedule:
    """The non-increasing-after-warmup schedule of ``steps`` updates with the lowest final loss under ``fit``.

    ``bootstrap`` (refits, e.g. :func:`riverbed.predict.bootstrap_curve_fits`) gives the interval of the final loss;
    without it the interval is the fit's own residual band. ``fractions``: the WSD decay fractions (of the steps
    after the warmup) the baselines are searched over. PredictError on unusable input; UnreliableFit on a fit its
    diagnostics refuse, unless it was kept forced or ``force`` (then the result is marked ``forced``).
    """
    _check(steps, warmup, peak_lr, min_lr)
    fit = fit.require_usable(force)
    if isinstance(knots, bool) or not isinstance(knots, int) or knots < 2:
        raise PredictError(f"--knots: must be an integer >= 2, got {knots!r}")
    m = min_lr / peak_lr
    post = steps - warmup
    warm = np.array(WarmupStable(warmup).values(warmup)) if warmup else np.zeros(0)
    t = _knot_positions(post, knots)
    bases = best_baselines(fit, steps, warmup, peak_lr, min_lr, fractions)

    def objective(f: np.ndarray) -> float:
        return final_loss(fit, peak_lr * _multipliers(f, t, post, warm, m), warmup)

    best_f, best_v = None, math.inf
    starts = sorted(bases, key=lambda b: b.final_loss)[:2]  # the two best baselines
    with Progress(enabled=progress, transient=True) as bar:
        task = bar.add(f"optimising the schedule under the {fit.law} law", max_iter * len(starts), unit="iterations")
        for i, b in enumerate(starts):
            start = np.array(schedule_from_spec(b.schedule).values(steps))[warmup:]
            with np.errstate(all="ignore"):
                res = minimize(objective, _factors(start, t, m), method="L-BFGS-B", bounds=[(0.0, 1.0)] * t.size,
                               options={"maxiter": max_iter, "eps": 1e-7}, callback=lambda _x: bar.advance(task))
            bar.update(task, completed=max_iter * (i + 1))
            if np.isfinite(res.fun) and res.fun < best_v:
                best_f, best_v = res.x, float(res.fun)
    if best_f is None:
        raise PredictError(f"the {fit.law} law gave no finite final loss for any schedule of {steps} steps")
    mult = np.round(_multipliers(best_f, t, post, warm, m), DECIMALS)
    mult[warmup:] = np.minimum.accumulate(np.clip(mult[warmup:], m, 1.0))  # rounding keeps it non-increasing
    lr = peak_lr * mult
    loss = final_loss(fit, lr, warmup)
    lo, hi, how = _interval(fit, loss, lr, warmup, bootstrap)
    return OptimalSchedule(fit.law, steps, warmup, float(peak_lr), float(min_lr), mult, loss, min(lo, loss), max(hi, loss),
                           how, bases, fit.forced)
