"""Fit a schedule-aware loss law to one or more loss curves; predict any other schedule's curve.

As both papers do, the fit minimises a Huber loss (delta = 1e-3) of the log residual
``log(pred) - log(loss)`` over the eval points of every curve (scipy's trust-region least squares
with ``loss="huber"``), from several starts, keeping the best. LRs are divided by the largest LR
seen (``lr_scale``) so the parameters are O(1); :meth:`LawFit.physical_params` gives them in the
LRs' own units (comparable with the papers' tables). Each curve is subsampled to at most
``max_points`` eval points for the fit (its full LR sequence is always used); residuals are
reported on every point it could be fitted on (every known point after the warmup).

>>> fit = fit_law([curve_a, curve_b], law="mpl")            # doctest: +SKIP
>>> fit.predict(other_curve)                                # doctest: +SKIP
>>> LawFit.from_json(fit.to_json()) == fit                  # doctest: +SKIP
True
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares
from scipy.stats import linregress

from riverbed.io.progress import Progress
from riverbed.predict.curves import Curve, PredictError
from riverbed.predict.laws import DEFAULT_LAW, LAW_SPECS, LAWS, TISSUE_LAMBDA

FORMAT = "riverbed.predict.law/1"
HUBER_DELTA = 1e-3  # both papers' Huber threshold on the log residual
MIN_POINTS = 8  # fewer known eval points than this cannot pin down 7 (or 4) parameters
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
            "mean_rel_error": self.mean_rel_error,
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
        return LawFit(law, {k: float(params[k]) for k in names}, float(scale), None if lam is None else float(lam), res,
                      float(doc.get("cost", 0.0)), dict(doc.get("meta") or {}))


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
            r = least_squares(resid, r.x, jac, bounds=(lo_b, hi_b), loss="huber", f_scale=HUBER_DELTA, x_scale="jac",
                              max_nfev=max_nfev, method="trf")
        if np.all(np.isfinite(r.fun)) and r.cost < best_cost:
            best_x, best_cost = r.x, float(r.cost)
    if best_x is None:
        raise PredictError(f"the {law} fit did not converge from any start")
    return best_x, best_cost


def _check(curves: Sequence[Curve], law: str) -> None:
    law_params(law)
    if not curves:
        raise PredictError("no curves to fit")
    n = sum(int(_fit_points(c).sum()) for c in curves)
    if n < MIN_POINTS:
        names = ", ".join(c.name for c in curves)
        raise PredictError(f"too few eval points to fit the {law} law: {n} after the warmup in {names} (need >= {MIN_POINTS})")
    for c in curves:
        if np.any(c.loss[c.known] <= 0):
            raise PredictError(f"curve {c.name}: losses must be positive")
    if not any(np.any(np.diff(c.lr[max(c.warmup - 1, 0):]) < 0) for c in curves):
        # Without a falling LR the decay terms (B, C, beta, gamma / C) are not identified at all.
        names = ", ".join(c.name for c in curves)
        raise PredictError(f"none of the curves ({names}) has a falling LR after the warmup: the {law} law needs at least one "
                           "decay to calibrate on (a finished decay branch, a cosine or WSD run)")


def fit_law(curves: Sequence[Curve], law: str = DEFAULT_LAW, *, max_points: int = 32, lam: float | None = None,
            max_nfev: int = 400, init: dict[str, float] | None = None, meta: dict[str, Any] | None = None) -> LawFit:
    """Fit ``law`` (one of ``LAWS``; default the valley law) to the known points of ``curves``; PredictError on unusable input.

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
    return LawFit(law, params, scale, lam, tuple(res), cost, dict(meta or {}))


def progress_steps(n: int, label: str, enabled: bool) -> Iterator[int]:
    """range(n), with a transient rich bar (ETA) on stderr when ``enabled``, so --json output stays clean."""
    if not enabled:
        yield from range(n)
        return

    with Progress(transient=True) as bar:
        task = bar.add(label, n, unit="fits")
        for i in range(n):
            yield i
            bar.advance(task)


def bootstrap_fits(curves: Sequence[Curve], fit: LawFit, *, n: int = 20, seed: int = 0, max_points: int = 32,
                   progress: bool = False) -> list[LawFit]:
    """Refits on the fitted curves' points resampled with replacement (started from ``fit``): the spread of their
    predictions is the fit's uncertainty."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in progress_steps(n, f"bootstrap {fit.law} ({n} refits)", progress):
        boot = []
        for c in curves:
            s = _subsample(c, max_points)
            pick = np.sort(rng.integers(0, s.steps.size, s.steps.size)) if s.steps.size else np.zeros(0, int)
            # Steps must increase, so a curve keeps each drawn point once and its residual is repeated per draw.
            u, counts = np.unique(pick, return_counts=True)
            keep = np.zeros(s.steps.size, bool)
            keep[u] = True
            b = s.with_points(keep)
            reps = np.repeat(np.arange(u.size), counts)
            boot.append((b, reps))
        terms = [_terms(fit.law, b.lr / fit.lr_scale, b.steps, b.warmup, fit.lam) for b, _ in boot]
        losses = [b.loss for b, _ in boot]
        x0 = np.array([fit.params[k] for k in law_params(fit.law)])
        x, cost = _solve_weighted(fit.law, terms, losses, [r for _, r in boot], x0)
        out.append(LawFit(fit.law, dict(zip(law_params(fit.law), map(float, x))), fit.lr_scale, fit.lam, (), cost, fit.meta))
    return out


def _solve_weighted(law: str, terms: list, losses: list[np.ndarray], reps: list[np.ndarray], x0: np.ndarray) -> tuple[np.ndarray, float]:
    # A bootstrap draw repeats points; repeating their residuals gives each its drawn weight.
    rep_terms = [_Repeat(t, r) for t, r in zip(terms, reps)]
    return _solve(law, rep_terms, [y[r] for y, r in zip(losses, reps)], [x0], max_nfev=100)


@dataclass(frozen=True)
class _Repeat:
    terms: Any
    idx: np.ndarray

    @property
    def s1(self) -> np.ndarray:
        return self.terms.s1[self.idx]

    def loss(self, **p: float) -> np.ndarray:
        return self.terms.loss(**p)[self.idx]

    def loss_and_jac(self, **p: float) -> tuple[np.ndarray, np.ndarray]:
        v, j = self.terms.loss_and_jac(**p)
        return v[self.idx], j[self.idx]
