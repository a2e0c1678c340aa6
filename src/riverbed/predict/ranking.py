"""The best decay at a budget: every (shape, length) ranked by predicted final loss, with intervals.

Each option's final loss carries a 95 % interval (percentiles over the bootstrap refits, the same
refits for every option, else linearised from the fit's covariance). An option whose interval
overlaps the best option's is marked ``tied``: the law cannot tell the two apart on this run, so the
ranking between them is not an answer (a 0.002-nat gap inside a 0.02-nat interval says nothing).

>>> ranking = best_decay("runs/tiny", 2000, law="mpl", bootstrap=20)       # doctest: +SKIP
>>> [(o.shape, o.length, o.tied) for o in ranking.options[:3]]           # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from riverbed.io.strict_json import number_or_null
from riverbed.checkpoints import layout
from riverbed.predict.bootstrap import bootstrap_curve_fits
from riverbed.predict.curves import PredictError
from riverbed.predict.fit import LawFit
from riverbed.predict.laws import DEFAULT_LAW
from riverbed.predict.runs import (
    _calibration_curves,
    _warmup,
    fit_run,
    open_run,
    peak_lr,
    schedule_curve,
)
from riverbed.runs import Run
from riverbed.schedules import DecayBranch, schedule_from_spec

#: Decay shapes the best-decay search tries (those that need no extra parameter).
SEARCH_SHAPES = ("linear", "cosine", "1-sqrt", "square", "mirror-cosine", "exp-megatron")
#: Decay lengths the best-decay search tries, as fractions of the budget.
SEARCH_FRACTIONS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)



@dataclass(frozen=True)
class DecayOption:
    shape: str
    length: int
    fork: int
    final_loss: float
    saved: bool
    """Is the fork step a saved main checkpoint (can it be trained as is)?"""
    lo: float = math.nan
    """95 % interval of the final loss (NaN: none)."""
    hi: float = math.nan
    tied: bool = False
    """Its interval overlaps the best option's: not distinguishable from the best on this run."""

    def to_dict(self) -> dict[str, Any]:
        return {"shape": self.shape, "length": self.length, "fork": self.fork, "final_loss": self.final_loss,
                "final_ci95": [number_or_null(self.lo), number_or_null(self.hi)], "tied_with_best": self.tied, "saved": self.saved}


@dataclass(frozen=True)
class DecayRanking:
    """Every option at ``budget``, lowest predicted final loss first."""

    run: str
    law: str
    budget: int
    options: tuple[DecayOption, ...]
    interval: str
    forced: bool = False

    @property
    def tied(self) -> int:
        """Options (besides the best) within the best's interval."""
        return sum(o.tied for o in self.options[1:])

    def statement(self) -> str:
        best = self.options[0]
        if self.interval == "none":
            return f"best: {best.shape} over {best.length} steps; no interval (the fit does not bound it), so the ranking is not resolved"
        if self.tied:
            return (f"best: {best.shape} over {best.length} steps, but {self.tied} other option(s) lie within its 95 % interval "
                    f"[{best.lo:.4f}, {best.hi:.4f}] (marked =): the law cannot rank them on this run")
        return f"best: {best.shape} over {best.length} steps, ahead of every other option beyond its 95 % interval"

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "law": self.law, "budget": self.budget, "interval": self.interval, "forced": self.forced,
                "tied_with_best": self.tied, "statement": self.statement(), "options": [o.to_dict() for o in self.options]}


def best_decay(run: Run | str | Path, budget: int, *, law: str = DEFAULT_LAW, fit: LawFit | None = None,
               shapes: Sequence[str] = SEARCH_SHAPES, fractions: Sequence[float] = SEARCH_FRACTIONS, bootstrap: int = 20,
               seed: int = 0, progress: bool = False, force: bool = False) -> DecayRanking:
    """Every (shape, decay length) at ``budget`` steps, best predicted final loss first, each with its interval."""
    run = open_run(run)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 2:
        raise PredictError(f"--budget: must be a number of steps >= 2, got {budget!r}")
    fit = (fit or fit_run(run, law, force=force)).require_usable(force)
    main = schedule_from_spec(run.branch(layout.MAIN).schedule)
    saved = {c.step for c in run.checkpoints(layout.MAIN)}
    lr = peak_lr(run)
    boot = bootstrap_curve_fits(_calibration_curves(run, fit), fit, n=bootstrap, seed=seed, progress=progress) if bootstrap else []
    rows = []
    for shape in shapes:
        for f in fractions:
            d = max(1, round(f * budget))
            fork = budget - d
            if fork <= _warmup(main):
                continue
            curve = schedule_curve(f"{shape}-{d}", DecayBranch(main, fork, d, shape), lr, budget, [budget])
            with np.errstate(all="ignore"):
                final = float(fit.predict(curve)[-1])
            fit.check_prediction(np.array([final]), [budget], f"--best-decay {shape} over {d} steps ({fit.law})")
            if boot:
                with np.errstate(all="ignore"):
                    ens = np.array([float(b.predict(curve)[-1]) for b in boot])
                ens = ens[np.isfinite(ens)]
                lo, hi = (min(float(np.percentile(ens, 2.5)), final), max(float(np.percentile(ens, 97.5)), final)) if ens.size >= 2 \
                    else (math.nan, math.nan)
            else:
                band = fit.linear_interval(curve)
                lo, hi = (float(band[0][-1]), float(band[1][-1])) if band is not None else (math.nan, math.nan)
            rows.append((shape, d, fork, final, fork in saved, lo, hi))
    if not rows:
        raise PredictError(f"--budget {budget}: no decay fits after the main branch's warmup")
    rows.sort(key=lambda r: r[3])
    best_hi = rows[0][6]
    opts = tuple(DecayOption(s, d, k, v, sv, lo, hi, i > 0 and math.isfinite(lo) and math.isfinite(best_hi) and lo <= best_hi)
                 for i, (s, d, k, v, sv, lo, hi) in enumerate(rows))
    if boot:
        kind = f"bootstrap ({len(boot)} refits)"
    else:
        kind = "linearised" if all(math.isfinite(o.lo) for o in opts) else "none"
    return DecayRanking(str(run.path), fit.law, budget, opts, kind, fit.forced)
