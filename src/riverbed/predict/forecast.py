"""The forecast monitor's engine: refit a law on a main branch as it trains; predict the loss of a decay started now.

:class:`Forecaster` keeps the main branch's eval curve (appended one point per evaluation) and the
previous fit, so each refit is warm-started and short (``ForecastConfig.max_nfev``). Calibration:

* with finished decay branches of the run (``decays``): the whole law is fitted on the main curve and
  those branches (:func:`riverbed.predict.fit_curve_law`, warm-started) when that set of branches changes;
  in between, its decay parameters are kept and only the forward part is refitted (as with a prior);
* else with a ``prior`` law file: its decay parameters are kept and only the forward part
  (L0, A, alpha) is refitted on the main curve (Huber on the log residual, as the fitter does);
* else there is nothing to calibrate a decay on, and the forecast stays silent (None).

The interval is the 5-95 % band of the fit's relative residuals on the main curve, applied to the
forecast: how far the law has been off on this run so far (it does not widen with the horizon).

>>> f = Forecaster(schedule, peak_lr=3e-3, law="valley", decay=0.2)           # doctest: +SKIP
>>> f.add(step, eval_loss); f.forecast(step, decays=[branch_curve])            # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from riverbed.predict.curves import Curve, PredictError, _warmup_of
from riverbed.predict.fit import LawFit, _subsample, fit_curve_law
from riverbed.predict.laws import LAW_SPECS
from riverbed.scaling.robust import HUBER_DELTA, huber_rho
from riverbed.schedules import DecayBranch, Schedule

FORWARD = ("L0", "A", "alpha")  # the parameters every law shares: what a main branch alone identifies


@dataclass(frozen=True)
class Forecast:
    """The predicted final loss of a decay of ``decay_steps`` forked at ``step``."""

    step: int
    decay_steps: int
    loss: float
    lo: float
    hi: float
    law: str
    calibration: str
    """"decay branches" or "prior" (decay parameters from the prior law file)."""
    refit_s: float

    def row(self) -> dict[str, Any]:
        """The metrics.jsonl row (kind "forecast")."""
        return {"kind": "forecast", "step": self.step, "forecast_loss": self.loss, "forecast_lo": self.lo,
                "forecast_hi": self.hi, "forecast_end": self.step + self.decay_steps, "forecast_decay_steps": self.decay_steps,
                "forecast_law": self.law, "forecast_calibration": self.calibration, "forecast_refit_s": self.refit_s}


class Forecaster:
    """Stateful: the main curve so far and the last fit (warm start)."""

    def __init__(self, schedule: Schedule, peak_lr: float, *, law: str, decay: float = 0.2, shape: str = "1-sqrt",
                 min_ratio: float = 0.0, min_points: int = 8, max_nfev: int = 60, prior: LawFit | None = None) -> None:
        """``decay``: the forecast decay's length as a fraction of the step it forks at; ``min_points``: main eval
        points after the warmup before any forecast; ``max_nfev``: evaluations per warm-started refit."""
        if prior is not None and prior.law != law:
            raise PredictError(f"forecast.prior: the law file is a {prior.law} fit, but forecast.law is {law!r}")
        self.law, self.decay, self.shape, self.min_ratio = law, decay, shape, min_ratio
        self.min_points, self.max_nfev = min_points, max_nfev
        self.schedule, self.peak_lr, self.prior = schedule, float(peak_lr), prior
        self.warmup = _warmup_of(schedule)
        self._mult: list[float] = []
        self._steps: list[int] = []
        self._loss: list[float] = []
        self._last: LawFit | None = None
        self._calib: tuple[tuple[tuple[str, int], ...], LawFit] | None = None  # the decay branches' full fit

    def add(self, step: int, loss: float) -> None:
        """One eval point of the main branch (a repeated or earlier step replaces the tail: a rewind)."""
        while self._steps and self._steps[-1] >= step:
            self._steps.pop()
            self._loss.pop()
        if math.isfinite(loss) and loss > 0:
            self._steps.append(int(step))
            self._loss.append(float(loss))

    def _lr(self, n: int) -> np.ndarray:
        while len(self._mult) < n:  # the multipliers grow with the run: computed once each
            self._mult.append(self.schedule.multiplier(len(self._mult)))
        return self.peak_lr * np.asarray(self._mult[:n])

    def main_curve(self, step: int) -> Curve:
        s = np.asarray([x for x in self._steps if x <= step], np.int64)
        y = np.asarray(self._loss[: s.size])
        keep = s >= max(self.warmup, 1)
        return Curve("main", self._lr(step), s[keep], y[keep], self.warmup)

    def forecast(self, step: int, decays: Sequence[Curve] = ()) -> Forecast | None:
        """The forecast at ``step`` (after its eval point was added), or None while the fit is not usable."""
        t0 = time.perf_counter()
        main = self.main_curve(step)
        if int((main.steps > self.warmup).sum()) < self.min_points:
            return None
        try:
            if decays:
                key = tuple((d.name, int(d.steps[-1])) for d in decays)
                if self._calib is None or self._calib[0] != key:
                    self._calib = (key, self._fit_all(main, decays))
                    fit = self._calib[1]
                else:
                    fit = self._fit_forward(main, self._calib[1])
                how = "decay branches"
            elif self.prior is not None:
                fit, how = self._fit_forward(main, self.prior), "prior"
            else:
                return None
        except PredictError:
            return None  # not usable yet (e.g. did not converge): silent, retried at the next evaluation
        d = max(1, round(self.decay * step))
        branch = DecayBranch(self.schedule, step, d, self.shape, self.min_ratio)
        lr = np.concatenate([self._lr(step), self.peak_lr * np.array([branch.multiplier(i) for i in range(step, step + d)])])
        end = Curve("forecast", lr, np.array([step + d]), np.array([math.nan]), self.warmup)
        loss = float(fit.predict(end)[0])
        k = main.with_points(main.steps > self.warmup)
        rel = (k.loss - fit.predict(k)) / fit.predict(k)
        lo, hi = loss * (1 + float(np.percentile(rel, 5))), loss * (1 + float(np.percentile(rel, 95)))
        if not all(math.isfinite(v) for v in (loss, lo, hi)):
            return None
        self._last = fit
        return Forecast(step, d, loss, min(lo, loss), max(hi, loss), fit.law, how, time.perf_counter() - t0)

    def _fit_all(self, main: Curve, decays: Sequence[Curve]) -> LawFit:
        init = self._calib[1].params if self._calib is not None else None
        kw: dict[str, Any] = {"init": init, "max_nfev": self.max_nfev} if init else {}
        return fit_curve_law([main, *decays], self.law, meta={"calibration": "decay branches"}, **kw)

    def _fit_forward(self, main: Curve, prior: LawFit) -> LawFit:
        """``prior``'s decay parameters, L0 / A / alpha refitted on the main curve (warm-started from the last fit)."""
        spec = LAW_SPECS[self.law]
        start = self._last.params if self._last is not None else prior.params
        sub = _subsample(main, 32)
        terms = spec.build(sub.lr / prior.lr_scale, sub.steps, sub.warmup, prior.lam)
        logy = np.log(sub.loss)
        idx = [spec.params.index(k) for k in FORWARD]
        base = np.array([prior.params[k] for k in spec.params])

        def resid(x: np.ndarray) -> np.ndarray:
            p = base.copy()
            p[idx] = x
            r = np.log(np.clip(terms.loss(*p), 1e-10, None)) - logy
            return np.where(np.isfinite(r), r, 1e3)

        def jac(x: np.ndarray) -> np.ndarray:
            p = base.copy()
            p[idx] = x
            v, J = terms.loss_and_jac(*p)
            J = J[:, idx] / np.clip(v, 1e-10, None)[:, None]
            return np.where(np.isfinite(J), J, 0.0)

        lo = [spec.lower[i] for i in idx]
        hi = [spec.upper[i] for i in idx]
        x0 = np.clip([start[k] for k in FORWARD], np.array(lo) + 1e-12, hi)
        with np.errstate(all="ignore"):
            r = least_squares(resid, x0, jac, bounds=(lo, hi), loss=huber_rho(HUBER_DELTA), f_scale=1.0, x_scale="jac",
                              max_nfev=self.max_nfev * (1 if self._last is not None else 5), method="trf")
        if not np.all(np.isfinite(r.fun)):
            raise PredictError("the forward refit did not converge")
        params = dict(prior.params)
        params.update(zip(FORWARD, map(float, r.x)))
        return LawFit(prior.law, params, prior.lr_scale, prior.lam, (), float(r.cost), {"calibration": "forward refit"})
