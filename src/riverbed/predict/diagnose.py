"""Can a fitted loss law be trusted? Degrees of freedom, in-sample error, bounds, identifiability.

A fit is judged on what its own data can say, for any law (through its parameter names and
bounds), from the Jacobian of the log prediction at the optimum:

- **degrees of freedom**: points fitted minus parameters; fewer points than twice the parameters
  leave the noise and the parameters entangled;
- **in-sample error** per curve: a mean relative error above 3 % means the law does not describe
  the curve; a point far above the law and above both its neighbours (8 robust sigmas and 2 %) is a
  spike (a point far *below* the law at the start of a curve is the law's known misfit of the
  steepest part, not a spike);
- **bounds**: a parameter at (or within 1 % of the range of) a bound of the law's box is where
  the optimiser stopped, not an estimate (``L0 = 8e-23``, ``gamma = 5e-20``, ``beta = 5``);
- **identifiability**: a parameter the data cannot pin down, because its Jacobian column is zero
  or in the null space of the others (a law's decay terms when no fitted curve has a falling LR):
  unreliable; a parameter whose 95 % linearised interval is merely wider than its value is weakly
  pinned (the MPL's decay-shape terms often are, on good data too): a note, not a refusal, since the
  predictions can still be tight (their own intervals say so).

Any reason above makes the verdict ``unreliable``, with every reason; a caller refuses such a fit
unless asked to force it (:meth:`riverbed.predict.fit.LawFit.require_usable`). The parameter
covariance (Gauss-Newton, residual variance over the degrees of freedom) is kept: it gives the
parameters' intervals here and a prediction's linearised interval where no bootstrap is run.

>>> d = diagnose(("a", "b"), np.array([1.0, 0.5]), ([0, 0], [np.inf, np.inf]),
...              np.array([[1.0, 0.1], [1.0, 0.5], [1.0, 0.9], [1.0, 1.3], [1.0, 1.7]]),
...              np.array([1e-3, -2e-3, 1e-3, 0.0, -1e-3]), (), has_decay=True)
>>> d.verdict, d.dof
('usable', 3)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from riverbed.predict.curves import PredictError

USABLE, UNRELIABLE = "usable", "unreliable"
CONFIDENCE = 0.95
MAX_MEAN_ERROR = 0.03  # in-sample mean relative error above which the law does not describe a curve
SPIKE_SIGMAS, SPIKE_MIN = 8.0, 0.02  # a point this many robust sigmas (and at least 2 %) off is a spike
BOUND_FRACTION = 0.01  # within 1 % of a finite range of its bound: at the bound
BOUND_ABS = 1e-6  # a half-open range: within this of its one bound (the laws' parameters are O(1))
NULL_TOL = 1e-8  # singular values below this x the largest: directions the data do not see


class UnreliableFit(PredictError):
    """A fit whose diagnostics say it cannot be trusted; the message lists every reason."""


@dataclass(frozen=True)
class ParamCheck:
    """One fitted parameter: its value, 95 % linearised interval, bound and whether the data pin it."""

    name: str
    value: float
    lo: float | None
    """Lower end of the 95 % interval (None: unbounded, the data do not see this parameter)."""
    hi: float | None
    bound: str | None
    """"lower" / "upper" when the value sits at that bound of the law's box."""
    pinned: bool

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "ci95": [self.lo, self.hi], "at_bound": self.bound, "pinned": self.pinned}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ParamCheck:
        lo, hi = d["ci95"]
        return ParamCheck(str(d["name"]), float(d["value"]), None if lo is None else float(lo), None if hi is None else float(hi),
                          d.get("at_bound"), bool(d["pinned"]))


@dataclass(frozen=True)
class FitDiagnostics:
    """What a fit's own data say about it, and the verdict."""

    points: int
    params: tuple[ParamCheck, ...]
    verdict: str
    reasons: tuple[str, ...]
    has_decay: bool
    """Does any fitted curve have a falling LR after its warmup, before its last fitted point?"""
    covariance: tuple[tuple[float, ...], ...] | None = None
    """Parameter covariance (the fit's LR units, the law's parameter order); None where singular."""
    residual_sd: float = 0.0
    """Standard deviation of the log residuals (over the degrees of freedom): the eval noise of one point."""
    notes: tuple[str, ...] = ()
    """Cautions that do not make the fit unreliable (weakly pinned parameters)."""

    @property
    def n_params(self) -> int:
        return len(self.params)

    @property
    def dof(self) -> int:
        return self.points - self.n_params

    @property
    def usable(self) -> bool:
        return self.verdict == USABLE

    @property
    def unpinned(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params if not p.pinned)

    @property
    def at_bounds(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params if p.bound)

    def summary(self) -> str:
        """One line: the verdict and why."""
        head = f"{self.verdict}: {self.points} points, {self.n_params} parameters, {self.dof} degrees of freedom"
        return head + ("" if self.usable else " -- " + "; ".join(self.reasons))

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reasons": list(self.reasons), "points": self.points, "n_params": self.n_params,
                "dof": self.dof, "has_decay": self.has_decay, "params": [p.to_dict() for p in self.params],
                "unpinned": list(self.unpinned), "at_bounds": list(self.at_bounds),
                "covariance": None if self.covariance is None else [list(r) for r in self.covariance],
                "residual_sd": self.residual_sd, "notes": list(self.notes)}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> FitDiagnostics:
        cov = d.get("covariance")
        return FitDiagnostics(int(d["points"]), tuple(ParamCheck.from_dict(p) for p in d["params"]), str(d["verdict"]),
                              tuple(str(r) for r in d["reasons"]), bool(d["has_decay"]),
                              None if cov is None else tuple(tuple(float(v) for v in r) for r in cov),
                              float(d.get("residual_sd", 0.0)), tuple(str(n) for n in d.get("notes", ())))


def _at_bound(v: float, lo: float, hi: float) -> tuple[str, float] | None:
    span = hi - lo if math.isfinite(hi) and math.isfinite(lo) else None
    tol = BOUND_FRACTION * span if span else BOUND_ABS
    if math.isfinite(lo) and v - lo <= tol:
        return "lower", lo
    if math.isfinite(hi) and hi - v <= tol:
        return "upper", hi
    return None


def _unseen(J: np.ndarray) -> np.ndarray:
    """Columns the data cannot see: zero, or carrying the null space of the column-normalised Jacobian."""
    norms = np.linalg.norm(J, axis=0)
    dead = ~(norms > 1e-12 * max(float(norms.max(initial=0.0)), 1e-300))
    live = np.flatnonzero(~dead)
    if live.size:
        Jn = J[:, live] / norms[live]
        _, s, vt = np.linalg.svd(Jn, full_matrices=False)
        null = vt[s < NULL_TOL * s[0]] if s.size and s[0] > 0 else vt
        if Jn.shape[0] < Jn.shape[1]:  # more unknowns than rows: the missing directions are null too
            null = np.linalg.svd(Jn, full_matrices=True)[2][Jn.shape[0]:]
        if null.size:
            dead[live[np.any(np.abs(null) > 0.3, axis=0)]] = True
    return dead


def _spike(r: np.ndarray, loss: np.ndarray) -> int | None:
    """The highest point above the law that is also above both its measured neighbours, if it is an outlier."""
    if r.size < 5:
        return None
    med = float(np.median(r))
    mad = 1.4826 * float(np.median(np.abs(r - med)))
    up = r - med  # the law's relative error is pred/loss - 1: a loss spike makes it negative
    peak = np.zeros(r.size, bool)
    peak[1:-1] = (loss[1:-1] > loss[:-2]) & (loss[1:-1] > loss[2:])
    peak[-1] = loss[-1] > loss[-2]
    cand = np.flatnonzero(peak & (-up > max(SPIKE_SIGMAS * mad, SPIKE_MIN)))
    return int(cand[np.argmin(up[cand])]) if cand.size else None


def diagnose(names: Sequence[str], x: np.ndarray, bounds: tuple[Sequence[float], Sequence[float]], J: np.ndarray,
             r: np.ndarray, curves: Sequence[Any], *, has_decay: bool) -> FitDiagnostics:
    """Diagnostics of a fit at ``x``: ``J`` (m, p) the Jacobian of log(prediction) at the m fitted points,
    ``r`` (m,) their log residuals, ``curves`` the per-curve in-sample residuals (``CurveResiduals``)."""
    m, p = J.shape
    dof = m - p
    reasons: list[str] = []
    if dof < p:
        reasons.append(f"too few points: {m} fitted points for {p} parameters ({dof} degrees of freedom; "
                       f"at least {2 * p} points are needed)")
    dead = _unseen(J)
    s2 = float(r @ r) / max(dof, 1)
    cov = None
    se = np.full(p, np.inf)
    if not dead.any():
        try:
            cov = s2 * np.linalg.inv(J.T @ J)
        except np.linalg.LinAlgError:
            cov = None
        if cov is not None and np.all(np.isfinite(cov)) and np.all(np.diag(cov) >= 0):
            se = np.sqrt(np.diag(cov))
        else:
            cov = None
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, max(dof, 1)) * se
    checks = []
    weak: list[str] = []
    for i, name in enumerate(names):
        v = float(x[i])
        b = _at_bound(v, float(bounds[0][i]), float(bounds[1][i]))
        finite = math.isfinite(float(half[i]))
        pinned = bool(not dead[i] and finite and half[i] <= abs(v))
        if not dead[i] and not pinned:
            weak.append(name)
        checks.append(ParamCheck(name, v, v - float(half[i]) if finite else None, v + float(half[i]) if finite else None,
                                 b[0] if b else None, pinned))
        if b:
            reasons.append(f"{name} = {v:.3g} is at its {b[0]} bound {b[1]:g} (where the optimiser stopped, not an estimate)")
    unseen = [name for i, name in enumerate(names) if dead[i]]
    if unseen:
        why = ("no fitted curve has a falling LR after its warmup, so a decay's effect is not in the data" if not has_decay
               else "the data cannot separate their effect from the other parameters'")
        reasons.append(f"the data cannot pin down {', '.join(unseen)} ({why})")
    notes = [f"weakly pinned: {', '.join(weak)} (95 % intervals wider than their values; extrapolations that lean on "
             "them are uncertain, which the predictions' intervals show)"] if weak else []
    for c in curves:
        if not c.steps:
            continue
        rel = np.asarray(c.pred) / np.asarray(c.loss) - 1.0
        if not np.all(np.isfinite(rel)):
            reasons.append(f"curve {c.name}: the law's in-sample prediction is not finite")
            continue
        if c.mean_rel_error > MAX_MEAN_ERROR:
            reasons.append(f"curve {c.name}: in-sample mean error {100 * c.mean_rel_error:.2f} % (the law does not describe it)")
        k = _spike(rel, np.asarray(c.loss))
        if k is not None:
            reasons.append(f"curve {c.name}: a spike at step {c.steps[k]} (loss {c.loss[k]:.4g}, the law {c.pred[k]:.4g}, "
                           f"{100 * abs(rel[k]):.1f} % off)")
    return FitDiagnostics(m, tuple(checks), UNRELIABLE if reasons else USABLE, tuple(reasons), has_decay,
                          None if cov is None else tuple(tuple(float(v) for v in row) for row in cov), math.sqrt(s2),
                          tuple(notes))


def loss_ceiling(curves: Sequence[Any]) -> float | None:
    """The highest loss among the fitted points: no prediction here can sensibly be above it."""
    vals = [max(c.loss) for c in curves if c.loss]
    return max(vals) if vals else None


def check_loss(values: np.ndarray, what: str, ceiling: float | None) -> None:
    """PredictError unless ``values`` (a prediction) are finite, positive and its last value not above ``ceiling``."""
    v = np.asarray(values, dtype=np.float64)
    bad = None
    if not np.all(np.isfinite(v)):
        bad = "not finite"
    elif np.any(v <= 0):
        bad = f"negative or zero ({float(v.min()):.6g})"
    elif ceiling is not None and v.size and v[-1] > ceiling:
        bad = f"{float(v[-1]):.6g}, above the highest loss the law was fitted on ({ceiling:.6g})"
    if bad:
        raise PredictError(f"{what}: the predicted loss is {bad}, which no loss here can be; the fit does not describe "
                           "this schedule (see `riverbed predict fit` for its diagnostics)")
