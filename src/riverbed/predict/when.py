"""When would a decay reach a target loss? The budget (fork + decay) at which the law's predicted decayed loss first
falls to ``target``, with its tokens and FLOPs, and the spread of that budget over bootstrap refits.

The decay is ``decay_fraction`` of the budget T (fork at T - D, D = round(fraction x T)), of ``shape``, from the run's
main-branch schedule (extrapolated past the trained steps: the law predicts the main branch's future too). The
predicted decayed loss falls as T grows, so the first T that reaches the target is found by bisection up to
``horizon`` (default 10x the main branch's trained steps).

>>> w = decay_reaching("runs/tiny", 2.05)              # doctest: +SKIP
>>> w.end, w.fork, w.tokens, w.flops, (w.end_lo, w.end_hi)   # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from riverbed.checkpoints import layout
from riverbed.predict.curves import Curve, PredictError
from riverbed.predict.bootstrap import bootstrap_curve_fits
from riverbed.predict.fit import LawFit
from riverbed.predict.laws import DEFAULT_LAW
from riverbed.predict.runs import _calibration_curves, _warmup, fit_run, open_run, peak_lr
from riverbed.runs import Run
from riverbed.schedules import DecayBranch, Schedule, schedule_from_spec


@dataclass(frozen=True)
class WhenAnswer:
    """The smallest budget whose decay reaches ``target`` under the law (None fields: not within the horizon)."""

    target: float
    law: str
    shape: str
    decay_fraction: float
    horizon: int
    trained: int
    """Main-branch steps trained so far (a fork at or before it can start now)."""
    end: int | None
    fork: int | None
    loss: float | None
    """The predicted decayed loss at ``end``."""
    tokens: int | None
    flops: float | None
    end_lo: int | None
    end_hi: int | None
    """5-95 % of ``end`` over the bootstrap refits (None for hi: some refits never reach it within the horizon)."""
    boot: int
    forced: bool = False
    """The fit was unreliable and kept by --force (the answer inherits its doubt)."""

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("target", "law", "forced", "shape", "decay_fraction", "horizon", "trained", "end",
                                             "fork", "loss", "tokens", "flops", "end_lo", "end_hi", "boot")} | {"reached": self.end is not None}


def _decayed(fit: LawFit, main_lr: np.ndarray, main: Schedule, peak: float, warmup: int, end: int, frac: float,
             shape: str) -> float:
    d = max(1, round(frac * end))
    fork = end - d
    branch = DecayBranch(main, fork, d, shape)
    lr = np.concatenate([main_lr[:fork], peak * np.array([branch.multiplier(i) for i in range(fork, end)])])
    return float(fit.predict(Curve("decay", lr, np.array([end]), np.array([math.nan]), warmup))[0])


def _first_end(fit: LawFit, main_lr: np.ndarray, main: Schedule, peak: float, warmup: int, lo: int, hi: int, frac: float,
               shape: str, target: float) -> int | None:
    def f(t: int) -> float:
        return _decayed(fit, main_lr, main, peak, warmup, t, frac, shape)

    if f(hi) > target:
        return None
    if f(lo) <= target:
        return lo
    while hi - lo > 1:  # f(lo) > target >= f(hi)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if f(mid) <= target else (mid, hi)
    return hi


def decay_reaching(run: Run | str | Path, target: float, *, law: str = DEFAULT_LAW, fit: LawFit | None = None,
                   shape: str = "1-sqrt", decay_fraction: float = 0.2, horizon: int | None = None, bootstrap: int = 20,
                   seed: int = 0, progress: bool = False, force: bool = False) -> WhenAnswer:
    """The smallest budget at which a ``shape`` decay over ``decay_fraction`` of it reaches ``target``; PredictError on
    unusable input, UnreliableFit on a fit its diagnostics refuse (unless ``force``)."""
    run = open_run(run)
    if not (isinstance(target, (int, float)) and math.isfinite(target) and target > 0):
        raise PredictError(f"--target: must be a positive loss, got {target!r}")
    if not (isinstance(decay_fraction, (int, float)) and 0 < decay_fraction < 1):
        raise PredictError(f"--decay-fraction: must be in (0, 1), got {decay_fraction!r}")
    rec = run.branch(layout.MAIN)
    point = rec.final or rec.progress
    if point is None or point.step < 1:
        raise PredictError(f"{run.path}: the main branch has no checkpoint yet")
    main = schedule_from_spec(rec.schedule, where="main.schedule")
    warmup = _warmup(main)
    trained = int(point.step)
    horizon = int(horizon) if horizon is not None else 10 * trained
    lo = max(warmup + 2, 2)
    if horizon <= lo:
        raise PredictError(f"--horizon: must be above {lo} steps, got {horizon}")
    fit = (fit or fit_run(run, law, force=force)).require_usable(force)
    peak = peak_lr(run)
    main_lr = peak * np.array(main.values(horizon))
    args = (main_lr, main, peak, warmup, lo, horizon, decay_fraction, shape, target)
    end = _first_end(fit, *args)
    boots = bootstrap_curve_fits(_calibration_curves(run, fit), fit, n=bootstrap, seed=seed, progress=progress) if bootstrap else []
    ends = [_first_end(b, *args) for b in boots]
    reached = sorted(e for e in ends if e is not None)
    end_lo = int(np.percentile(reached, 5)) if reached else None
    end_hi = int(np.percentile([e if e is not None else math.inf for e in ends], 95)) if boots and len(reached) == len(ends) else None
    tps = point.tokens / point.step if point.step else 0.0
    fps = point.flops / point.step if point.step else 0.0
    loss = _decayed(fit, main_lr, main, peak, warmup, end, decay_fraction, shape) if end is not None else None
    fork = end - max(1, round(decay_fraction * end)) if end is not None else None
    return WhenAnswer(float(target), fit.law, shape, float(decay_fraction), horizon, trained, end, fork, loss,
                      None if end is None else int(round(end * tps)), None if end is None else end * fps, end_lo, end_hi,
                      len(boots), fit.forced)
