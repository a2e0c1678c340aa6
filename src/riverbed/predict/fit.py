"""Fit a schedule-aware loss law to one or more loss curves; predict any other schedule's curve.

As both papers do, the fit minimises a Huber loss (delta = 1e-3, :func:`riverbed.scaling.robust.huber`, the
same function the scaling-law fit minimises) of the log residual ``log(pred) - log(loss)`` over the
eval points of every curve (scipy's trust-region least squares), from several starts, keeping the best.
Every fit carries its diagnostics (:mod:`riverbed.predict.diagnose`: degrees of freedom, in-sample
error, parameters at bounds, what the data cannot pin down) and a verdict; :meth:`LawFit.require_usable`
refuses an unreliable one unless forced, and a forced fit says so in its JSON. LRs are divided by the largest LR
seen (``lr_scale``) so the parameters are O(1); :meth:`LawFit.physical_params` gives them in the
LRs' own units (comparable with the papers' tables). Each curve is subsampled to at most
``max_points`` eval points for the fit (its full LR sequence is always used); residuals are
reported on every point it could be fitted on (every known point after the warmup).

>>> fit = fit_curve_law([curve_a, curve_b], law="mpl")      # doctest: +SKIP
>>> fit.diagnostics.verdict, fit.diagnostics.reasons        # doctest: +SKIP
>>> fit.predict(other_curve)                                # doctest: +SKIP
>>> LawFit.from_json(fit.to_json()) == fit                  # doctest: +SKIP
True
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats
from scipy.optimize import least_squares
from scipy.stats import linregress

from riverbed.predict.curves import Curve, PredictError
from riverbed.predict.diagnose import FitDiagnostics, UnreliableFit, check_loss, diagnose, loss_ceiling
from riverbed.predict.laws import DEFAULT_LAW, LAW_SPECS, LAWS, TISSUE_LAMBDA

from riverbed.scaling.robust import HUBER_DELTA, huber, huber_rho

FORMAT = "riverbed.predict.law/1"
_BOUNDS = {law: (list(spec.lower), list(spec.upper)) for law, spec in LAW_SPECS.items()}


def law_params(law: str) -> tuple[str, ...]:
    if law not in LAWS:
        raise PredictError(f"--law must be one of {', '.join(LAWS)}, got {law!r}")
    return LAW_SPECS[law].params


@dataclass(frozen=True)
class CurveResiduals:
    """How well the fit reproduces one curve it was fitted on."""

    name: str
    steps: tuple[int, ...]
    loss: tuple[float, ...]
    pred: tuple[float, ...]

    @property
    def rel_errors(self) -> np.ndarray:
        loss = np.asarray(self.loss)
        return np.abs(np.asarray(self.pred) - loss) / loss

    @property
    def mean_rel_error(self) -> float:
        return float(np.mean(self.rel_errors))

    @property
    def max_rel_error(self) -> float:
        return float(np.max(self.rel_errors))


@dataclass(frozen=True)
class LawFit:
    """A fitted law: parameters (in LR units of ``lr_scale``), residuals per fitted curve."""

    law: str
    params: dict[str, float]
    lr_scale: float
    lam: float | None = None
    """Tissue only: the annealing-momentum decay factor (fixed, not fitted)."""
    residuals: tuple[CurveResiduals, ...] = ()
    cost: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)
    """Free-form provenance (run, branches), strict JSON."""
    diagnostics: FitDiagnostics | None = None
    """Degrees of freedom, bounds, identifiability and the verdict (None: a bootstrap refit, or a law
    file written before fits carried diagnostics)."""
    forced: bool = False
    """An unreliable fit kept on request (``--force``): every output that uses it says so."""

    @property
    def usable(self) -> bool:
        return self.diagnostics is None or self.diagnostics.usable

    def check_prediction(self, values: np.ndarray, steps: Sequence[int] | np.ndarray, what: str) -> None:
        """PredictError unless ``values`` (predicted at ``steps``) can be a loss here: finite, positive, and, for a
        prediction that ends inside or past the fitted stretch, not above the highest loss fitted on."""
        first = min((r.steps[0] for r in self.residuals if r.steps), default=None)
        ends_inside = first is not None and len(steps) > 0 and int(np.asarray(steps)[-1]) >= first
        check_loss(values, what, loss_ceiling(self.residuals) if ends_inside else None)

    def require_usable(self, force: bool = False) -> LawFit:
        """This fit if usable (or already forced: it says so wherever it is used); with ``force``, an unreliable one
        marked ``forced``; otherwise UnreliableFit with every reason."""
        if self.usable or self.forced:
            return self
        if force:
            return dataclasses.replace(self, forced=True)
        raise UnreliableFit(f"the {self.law} fit is unreliable: {'; '.join(self.diagnostics.reasons)}. "
                            "Add curves or eval points that pin it down, or --force (force=True) to use it anyway, marked as forced")

    def param_jacobian(self, curve: Curve, steps: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Predicted loss at ``steps`` and its derivatives in the parameters (law order), LR units of ``lr_scale``."""
        pts = curve.steps if steps is None else np.asarray(steps, np.int64)
        return _terms(self.law, curve.lr / self.lr_scale, pts, curve.warmup, self.lam).loss_and_jac(**self.params)

    def linear_interval(self, curve: Curve, steps: Sequence[int] | None = None, *,
                        observed: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
        """95 % linearised (delta-method) interval of the prediction from the parameter covariance; None
        where the fit has none (a parameter the data do not see). ``observed``: the interval of one *measured*
        eval loss (the law's uncertainty plus the eval noise of the fitted points), to compare a trained loss with."""
        d = self.diagnostics
        if d is None or d.covariance is None:
            return None
        pred, J = self.param_jacobian(curve, steps)
        var = np.einsum("ij,jk,ik->i", J, np.asarray(d.covariance), J)
        if observed:
            var = var + (d.residual_sd * pred) ** 2
        half = stats.t.ppf(0.975, max(d.dof, 1)) * np.sqrt(np.maximum(var, 0.0))
        return pred - half, pred + half

    def predict(self, curve: Curve, steps: Sequence[int] | None = None) -> np.ndarray:
        """Predicted loss of ``curve`` (its LR sequence) at its eval steps or at ``steps``."""
        pts = curve.steps if steps is None else np.asarray(steps, np.int64)
        return _predict(self.law, self.params, self.lam, curve.lr / self.lr_scale, pts, curve.warmup)

    def physical_params(self) -> dict[str, float]:
        return LAW_SPECS[self.law].physical(self.params, self.lr_scale)

    @property
    def mean_rel_error(self) -> float:
        errs = np.concatenate([r.rel_errors for r in self.residuals]) if self.residuals else np.zeros(0)
        return float(np.mean(errs)) if errs.size else math.nan

    def to_json(self) -> str:
        doc = {
            "format": FORMAT,
            "law": self.law,
            "params": self.params,
            "lr_scale": self.lr_scale,
            "lam": self.lam,
            "physical_params": self.physical_params(),
            "huber_delta": HUBER_DELTA,
            "cost": self.cost,
            "mean_rel_error": self.mean_rel_error if math.isfinite(self.mean_rel_error) else None,  # None: no fitted points
            "verdict": None if self.diagnostics is None else self.diagnostics.verdict,
            "forced": self.forced,
            "diagnostics": None if self.diagnostics is None else self.diagnostics.to_dict(),
            "curves": [
                {"name": r.name, "points": len(r.steps), "mean_rel_error": r.mean_rel_error, "max_rel_error": r.max_rel_error,
                 "steps": list(r.steps), "loss": list(r.loss), "pred": list(r.pred)}
                for r in self.residuals
            ],
            "meta": self.meta,
        }
        return json.dumps(doc, indent=1, allow_nan=False) + "\n"

    @staticmethod
    def from_json(text: str, *, where: str = "law") -> LawFit:
        """Parse :meth:`to_json` output; PredictError names ``where`` and the bad key."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PredictError(f"{where}: not JSON ({exc})") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise PredictError(f"{where}: not a riverbed law file (format must be {FORMAT!r})")
        law = doc.get("law")
        names = law_params(law) if law in LAWS else None
        if names is None:
            raise PredictError(f"{where}: law: must be one of {', '.join(LAWS)}, got {law!r}")
        params = doc.get("params")
        if not isinstance(params, dict) or set(params) != set(names):
            raise PredictError(f"{where}: params: need exactly {', '.join(names)}")
        for k in names:
            if not isinstance(params[k], (int, float)) or not math.isfinite(params[k]):
                raise PredictError(f"{where}: params.{k}: must be a finite number, got {params[k]!r}")
        scale = doc.get("lr_scale")
        if not isinstance(scale, (int, float)) or not scale > 0:
            raise PredictError(f"{where}: lr_scale: must be a positive number, got {scale!r}")
        try:
            res = tuple(CurveResiduals(c["name"], tuple(int(s) for s in c["steps"]), tuple(float(v) for v in c["loss"]),
                                       tuple(float(v) for v in c["pred"])) for c in doc.get("curves", []))
        except (KeyError, TypeError, ValueError) as exc:
            raise PredictError(f"{where}: curves: malformed ({exc})") from exc
        lam = doc.get("lam")
        try:
            diag = None if doc.get("diagnostics") is None else FitDiagnostics.from_dict(doc["diagnostics"])
        except (KeyError, TypeError, ValueError) as exc:
            raise PredictError(f"{where}: diagnostics: malformed ({exc})") from exc
        return LawFit(law, {k: float(params[k]) for k in names}, float(scale), None if lam is None else float(lam), res,
                      float(doc.get("cost", 0.0)), dict(doc.get("meta") or {}), diag, bool(doc.get("forced", False)))


def _terms(law: str, lr: np.ndarray, steps: np.ndarray, warmup: int, lam: float | None):
    return LAW_SPECS[law].build(lr, steps, warmup, lam)


def _predict(law: str, params: dict[str, float], lam: float | None, lr: np.ndarray, steps: np.ndarray, warmup: int) -> np.ndarray:
    return _terms(law, lr, steps, warmup, lam).loss(**params)


def _fit_points(curve: Curve) -> np.ndarray:
    # The point at the very end of the warmup is predicted but not fitted on: it sits on the steepest part of the
    # curve and, fitted on, costs the 400M held-out curves 0.04 points of mean relative error.
    return curve.known & (curve.steps > curve.warmup)


def _subsample(curve: Curve, max_points: int) -> Curve:
    known = np.flatnonzero(_fit_points(curve))
    if known.size > max_points:
        known = known[np.unique(np.linspace(0, known.size - 1, max_points).round().astype(int))]
    keep = np.zeros(curve.steps.size, bool)
    keep[known] = True
    return curve.with_points(keep)


def _starts(law: str, terms: list, losses: list[np.ndarray]) -> list[np.ndarray]:
    """Initial points: a power law in the LR area fitted by regression (as the MPL code does), crossed with a few
    scales for the decay terms."""
    loss = np.concatenate(losses)
    s1 = np.concatenate([t.s1 for t in terms])
    lo = float(loss.min())
    span = float(loss.max() - lo) or 0.1
    reg = linregress(np.log(s1), np.log(loss - lo + 0.01 * span))
    A0, a0 = float(np.exp(reg.intercept)), float(np.clip(-reg.slope, 0.05, 2.0))
    return LAW_SPECS[law].starts(lo, span, A0, a0, float(s1.max()))


def _solve(law: str, terms: list, losses: list[np.ndarray], x0s: list[np.ndarray], max_nfev: int) -> tuple[np.ndarray, float]:
    names = law_params(law)
    logy = np.concatenate([np.log(y) for y in losses])
    lo_b, hi_b = _BOUNDS[law]

    def resid(x: np.ndarray) -> np.ndarray:
        p = dict(zip(names, x))
        pred = np.concatenate([t.loss(**p) for t in terms])
        r = np.log(np.clip(pred, 1e-10, None)) - logy
        return np.where(np.isfinite(r), r, 1e3)  # an overflow far from the optimum: a big finite residual

    def jac(x: np.ndarray) -> np.ndarray:
        # d log(pred) = d pred / pred: the laws' analytic derivatives, a few times cheaper than finite differences.
        p = dict(zip(names, x))
        parts = [t.loss_and_jac(**p) for t in terms]
        pred = np.clip(np.concatenate([v for v, _ in parts]), 1e-10, None)
        J = np.concatenate([j for _, j in parts]) / pred[:, None]
        return np.where(np.isfinite(J), J, 0.0)

    best_x, best_cost = None, math.inf
    for x0 in x0s:
        x0 = np.clip(x0, np.asarray(lo_b) + 1e-12, np.where(np.isfinite(hi_b), np.asarray(hi_b) - 1e-12, np.inf))
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            # Plain least squares first: from a far start every residual is past the Huber threshold and the
            # Huber loss alone only sees their signs; then the Huber fit the papers use, from there.
            r = least_squares(resid, x0, jac, bounds=(lo_b, hi_b), x_scale="jac", max_nfev=max_nfev, method="trf")
            r = least_squares(resid, r.x, jac, bounds=(lo_b, hi_b), loss=huber_rho(HUBER_DELTA), f_scale=1.0, x_scale="jac",
                              max_nfev=max_nfev, method="trf")
        if np.all(np.isfinite(r.fun)):
            cost = float(huber(r.fun, HUBER_DELTA).sum())
            if cost < best_cost:
                best_x, best_cost = r.x, cost
    if best_x is None:
        raise PredictError(f"the {law} fit did not converge from any start")
    return best_x, best_cost


def _log_jacobian(law: str, terms: list, losses: list[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Jacobian of log(prediction) in the parameters at ``x``, and the log residuals, over the fitted points."""
    p = dict(zip(law_params(law), x))
    parts = [t.loss_and_jac(**p) for t in terms]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        pred = np.concatenate([v for v, _ in parts])
        J = np.concatenate([j for _, j in parts]) / pred[:, None]
        r = np.log(pred) - np.concatenate([np.log(y) for y in losses])
    return np.where(np.isfinite(J), J, 0.0), np.where(np.isfinite(r), r, 1e3)


def _has_decay(curves: Sequence[Curve]) -> bool:
    """Does the LR fall after the warmup before the last fitted point of any curve?"""
    for c in curves:
        pts = c.steps[_fit_points(c)]
        if pts.size and np.any(np.diff(c.lr[max(c.warmup - 1, 0): int(pts[-1])]) < 0):
            return True
    return False


def _check(curves: Sequence[Curve], law: str) -> None:
    law_params(law)
    if not curves:
        raise PredictError("no curves to fit")
    n = sum(int(_fit_points(c).sum()) for c in curves)
    p = len(law_params(law))
    if n <= p:
        # Fewer points than parameters cannot even be fitted; a few more are fitted and judged (diagnose).
        names = ", ".join(c.name for c in curves)
        raise PredictError(f"too few eval points to fit the {law} law: {n} after the warmup in {names} (its {p} parameters "
                           f"need more than {p}, and at least {2 * p} for a usable fit)")
    for c in curves:
        if np.any(c.loss[c.known] <= 0):
            raise PredictError(f"curve {c.name}: losses must be positive")


def fit_curve_law(curves: Sequence[Curve], law: str = DEFAULT_LAW, *, max_points: int = 32, lam: float | None = None,
                  max_nfev: int = 400, init: dict[str, float] | None = None, meta: dict[str, Any] | None = None) -> LawFit:
    """Fit ``law`` (one of ``LAWS``; default the valley law) to the known points of ``curves``, with its diagnostics
    and verdict (``fit.diagnostics``); PredictError on input that cannot be fitted at all.

    The fit is returned whatever its verdict: callers that answer with it call :meth:`LawFit.require_usable`.
    ``init`` (parameters in ``lr_scale`` units, e.g. a previous fit's) replaces the default starts.
    """
    _check(curves, law)
    lam = (TISSUE_LAMBDA if lam is None else float(lam)) if law == "tissue" else None
    scale = float(max(c.lr.max() for c in curves))
    if not scale > 0:
        raise PredictError("the curves' learning rates are all zero")
    sub = [_subsample(c, max_points) for c in curves]
    sub = [c for c in sub if c.steps.size]
    terms = [_terms(law, c.lr / scale, c.steps, c.warmup, lam) for c in sub]
    losses = [c.loss for c in sub]
    names = law_params(law)
    x0s = [np.array([init[k] for k in names])] if init else _starts(law, terms, losses)
    x, cost = _solve(law, terms, losses, x0s, max_nfev)
    params = {k: float(v) for k, v in zip(names, x)}
    res = []
    for c in curves:
        k = c.with_points(_fit_points(c))
        pred = _predict(law, params, lam, k.lr / scale, k.steps, k.warmup)
        res.append(CurveResiduals(c.name, tuple(int(s) for s in k.steps), tuple(float(v) for v in k.loss), tuple(float(v) for v in pred)))
    J, r = _log_jacobian(law, terms, losses, x)
    diag = diagnose(names, x, _BOUNDS[law], J, r, res, has_decay=_has_decay(sub))
    return LawFit(law, params, scale, lam, tuple(res), cost, dict(meta or {}), diag)


