"""Predictions and the compute-optimal frontier from a fitted law, with bootstrap intervals.

Intervals are percentile intervals over the bootstrap refits: they bound the fitted *law* at
that point (a confidence interval), not the scatter of one new training run around it.

Frontier (Hoffmann et al. 2022, approach 3), with C = 6 N D::

    G = (alpha A / (beta B))^(1 / (alpha + beta))
    N_opt(C) = G (C / 6)^(beta / (alpha + beta)),   D_opt(C) = G^-1 (C / 6)^(alpha / (alpha + beta))

>>> import numpy as np
>>> n, d = optimal_allocation(np.exp(6.0073404), np.exp(6.0179186), 0.33917084, 0.2849083, 5.76e23)
>>> round(float(n) / 1e10, 1)
4.0
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from riverbed.errors import ScalingError
from riverbed.scaling.fit import FitResult, FitWarning, _quantiles
from riverbed.scaling.points import Points, data_range


@dataclass(frozen=True)
class Estimate:
    """A value with an optional (lo, hi) interval."""

    value: float
    lo: float | None = None
    hi: float | None = None
    warnings: tuple[str, ...] = ()
    """Extrapolation beyond the fitted data (``predict`` only); reported by the caller, not in ``to_json``."""

    def to_json(self) -> dict:
        return {"value": self.value, "lo": self.lo, "hi": self.hi}


@dataclass(frozen=True)
class FrontierPoint:
    """Compute-optimal allocation for one budget."""

    flops: float
    n_opt: Estimate
    d_opt: Estimate
    loss: Estimate
    tokens_per_param: float
    warnings: tuple[str, ...] = ()
    """How far the budget and the allocation lie beyond the fitted data."""

    def to_json(self) -> dict:
        return {"flops": self.flops, "N_opt": self.n_opt.to_json(), "D_opt": self.d_opt.to_json(), "loss": self.loss.to_json(), "tokens_per_param": self.tokens_per_param, "warnings": list(self.warnings)}


def extrapolation(fit: FitResult, *, n: float | None = None, d: float | None = None, c: float | None = None) -> tuple[str, ...]:
    """One message per quantity outside the fitted data, saying by how many times.

    >>> pts = Points.from_arrays([1e8] * 4, [1e9, 2e9, 4e9, 8e9], [3.0, 2.9, 2.8, 2.75])
    >>> fit = FitResult("data", (0.0, 0.0, 0.0), 0.0, pts)
    >>> extrapolation(fit, d=8e10)
    ('extrapolation: D=8e+10 is 10x the largest D in the fit (8e+09)',)
    """
    rng = data_range(fit.points)
    given = {"N": n if "N" in fit.law_def.features else None, "D": d, "C": c}
    out = []
    for name, v in given.items():
        if v is None:
            continue
        lo, hi = rng[name]
        if v > hi:
            out.append(f"extrapolation: {name}={v:.4g} is {v / hi:.3g}x the largest {name} in the fit ({hi:.4g})")
        elif v < lo:
            out.append(f"extrapolation: {name}={v:.4g} is {lo / v:.3g}x below the smallest {name} in the fit ({lo:.4g})")
    return tuple(out)


def _estimate(value: float, samples: np.ndarray | None, ci: float) -> Estimate:
    if samples is None:
        return Estimate(float(value))
    lo, hi = np.quantile(samples[np.isfinite(samples)], _quantiles(ci))
    return Estimate(float(value), float(lo), float(hi))


def predict(fit: FitResult, n: float | None, d: float, *, ci: float | None = None) -> Estimate:
    """Fitted loss at ``n`` parameters and ``d`` tokens, with a bootstrap interval when available.

    ``n`` is ignored (may be None) for the ``data`` law.
    """
    spec = fit.law_def
    if "N" in spec.features and n is None:
        raise ScalingError("law 'chinchilla' needs --n (parameters)")
    for name, v in (("n", n), ("d", d)):
        if v is not None and not (np.isfinite(v) and v > 0):
            raise ScalingError(f"--{name} must be a positive number, got {v}")
    value = float(spec.predict(np.asarray(fit.theta), n, d))
    samples = None
    if fit.bootstrap is not None:
        samples = np.array([float(spec.predict(t, n, d)) for t in fit.bootstrap])
    est = _estimate(value, samples, fit.ci if ci is None else ci)
    notes = extrapolation(fit, n=n, d=d, c=6.0 * n * d if n is not None and "N" in spec.features else None)
    for note in notes:
        warnings.warn(note, FitWarning, stacklevel=2)
    return Estimate(est.value, est.lo, est.hi, notes)


def optimal_allocation(a: np.ndarray | float, b: np.ndarray | float, alpha: np.ndarray | float, beta: np.ndarray | float, flops: float) -> tuple[np.ndarray, np.ndarray]:
    """N_opt, D_opt for budget ``flops`` from natural parameters A, B, alpha, beta (C = 6 N D)."""
    a, b, alpha, beta = (np.asarray(v, dtype=np.float64) for v in (a, b, alpha, beta))
    with np.errstate(all="ignore"):
        g = (alpha * a / (beta * b)) ** (1.0 / (alpha + beta))
        n_opt = g * (flops / 6.0) ** (beta / (alpha + beta))
        d_opt = (flops / 6.0) ** (alpha / (alpha + beta)) / g
    return n_opt, d_opt


def frontier(fit: FitResult, flops: float, *, ci: float | None = None) -> FrontierPoint:
    """Compute-optimal N, D and loss for ``flops`` training FLOPs (``chinchilla`` law only)."""
    spec = fit.law_def
    if spec.name != "chinchilla":
        raise ScalingError(f"the frontier needs the 'chinchilla' law (N and D); this fit is {spec.name!r}")
    if not (np.isfinite(flops) and flops > 0):
        raise ScalingError(f"--flops must be a positive number, got {flops}")
    p = fit.params
    if p["alpha"] <= 0 or p["beta"] <= 0:
        raise ScalingError(f"no finite frontier: alpha = {p['alpha']:.4g}, beta = {p['beta']:.4g} must both be positive")
    n_opt, d_opt = optimal_allocation(p["A"], p["B"], p["alpha"], p["beta"], flops)
    loss = float(spec.predict(np.asarray(fit.theta), n_opt, d_opt))
    level = fit.ci if ci is None else ci
    ns = ds = ls = None
    if fit.bootstrap is not None:
        nat = spec.natural(fit.bootstrap)
        ns, ds = optimal_allocation(nat["A"], nat["B"], nat["alpha"], nat["beta"], flops)
        ls = np.array([float(spec.predict(t, nn, dd)) if np.isfinite(nn) and np.isfinite(dd) else np.nan for t, nn, dd in zip(fit.bootstrap, ns, ds)])
    notes = extrapolation(fit, n=float(n_opt), d=float(d_opt), c=float(flops))
    for note in notes:
        warnings.warn(note, FitWarning, stacklevel=2)
    return FrontierPoint(
        flops=float(flops),
        n_opt=_estimate(float(n_opt), ns, level),
        d_opt=_estimate(float(d_opt), ds, level),
        loss=_estimate(loss, ls, level),
        tokens_per_param=float(d_opt / n_opt),
        warnings=notes,
    )
