"""Fitting a law: the full initialisation grid, variable projection, a scipy polish, the best start.

This is Chinchilla's approach 3 as Epoch AI's replication runs it (background section 4):
minimise the **sum** of Huber(delta = 1e-3) on log-loss residuals from every start of the grid
and keep the lowest optimum. The law is linear in (E, A, B) once (alpha, beta) are fixed
(:mod:`riverbed.scaling.varpro`): the grid's starts that share (alpha, beta) share their
projected start -- the best (a, b, e) for those exponents -- so Epoch's 4,500 starts are 25
rows; a damped Gauss-Newton (IRLS for the Huber loss) takes every row to its optimum, rows that
meet are merged, and scipy's L-BFGS-B polishes the best few distinct optima.
``bench/scaling_fit.py`` checks the optimum against Epoch's loop of 4,500 L-BFGS-B calls.

>>> import numpy as np
>>> n = np.repeat([1e7, 3e7, 1e8, 3e8], 4); d = np.tile([1e8, 3e8, 1e9, 3e9], 4)
>>> loss = 1.8 + 400 / n**0.34 + 2000 / d**0.37
>>> fit = fit_law(Points.from_arrays(n, d, loss), "chinchilla")
>>> round(fit.params["alpha"], 2), round(fit.params["E"], 2)
(0.34, 1.8)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

import numpy as np

from riverbed.errors import ScalingError
from riverbed.scaling.bootstrap import bootstrap_fits, law_data
from riverbed.scaling.laws import HUBER_DELTA, Law, get_law, objective_and_grad, uncenter
from riverbed.scaling.optimize import polish
from riverbed.scaling.points import Points, data_range, design_warnings, distinct_points, validate
from riverbed.scaling.varpro import gauss_newton, inner_solve

#: Distinct optima polished with scipy L-BFGS-B after the Gauss-Newton phase.
N_POLISH = 5
#: Relative objective window above the best Gauss-Newton optimum inside which optima are polished.
POLISH_WINDOW = 1e-2
#: Gauss-Newton iterations of the projection (a start for the joint solve, not an optimum).
PROJECT_ITER = 10
#: Other distinct optima within this factor of the best objective also start each bootstrap refit.
BOOTSTRAP_WINDOW = 1.5

class FitWarning(UserWarning):
    """A fit that needs a caveat (few degrees of freedom, an unidentifiable design, extrapolation).

    The same text is kept in ``FitResult.warnings`` (and its JSON), so the CLI prints it once.
    """


MEAN_WARNING = (
    "loss_reduction='mean' averages the Huber terms: L-BFGS then stops early (the reported cause of "
    "Chinchilla's implausibly narrow intervals, Besiroglu et al. 2024); the default 'sum' matches Epoch AI"
)


@dataclass(frozen=True)
class FitResult:
    """A fitted law with its provenance. JSON round-trips through ``to_json``/``from_json``."""

    law: str
    """Law name (``chinchilla`` or ``data``)."""
    theta: tuple[float, ...]
    """Best log-space parameters in the law's vector order."""
    objective: float
    """Huber objective at ``theta`` (with ``loss_reduction``)."""
    points: Points
    """The points fitted (after ``drop_highest``)."""
    delta: float = HUBER_DELTA
    """Huber threshold on log-loss residuals."""
    loss_reduction: str = "sum"
    """``sum`` (Chinchilla/Epoch) or ``mean`` (explicit opt-in only)."""
    best_start: dict[str, float] = field(default_factory=dict)
    """The grid start that reached the optimum (an interior one when several did). Starts with
    the same exponents share one projected start, so its (a, b, e) are the grid's, not a path."""
    n_starts: int = 0
    """Grid starts tried."""
    n_starts_at_optimum: int = 0
    """Starts whose optimum lies within 1e-6 (relative) of the best objective (counted per
    grid start: every start of an exponent pair that reached it)."""
    dropped: tuple[str, ...] = ()
    """Labels of the points removed by ``drop_highest``."""
    warnings: tuple[str, ...] = ()
    """Things a reader must know (best start on the grid boundary, mean reduction, ...)."""
    bootstrap: np.ndarray | None = None
    """Bootstrap refits, (B, P) log-space parameter vectors, or None."""
    bootstrap_seed: int | None = None
    """Seed of the bootstrap resampling."""
    ci: float = 0.95
    """Confidence level of the reported intervals."""

    @property
    def law_def(self) -> Law:
        return get_law(self.law)

    @property
    def params(self) -> dict[str, float]:
        """Natural-unit parameters: E, A, B, alpha, beta (``data``: E, B, beta)."""
        return {k: float(v) for k, v in self.law_def.natural(np.asarray(self.theta)).items()}

    def intervals(self, ci: float | None = None) -> dict[str, tuple[float, float]]:
        """Percentile bootstrap intervals per natural parameter (empty without a bootstrap)."""
        if self.bootstrap is None or len(self.bootstrap) == 0:
            return {}
        q = _quantiles(ci if ci is not None else self.ci)
        nat = self.law_def.natural(self.bootstrap)
        with np.errstate(invalid="ignore"):  # inf samples (degenerate refits) give inf bounds
            return {k: tuple(float(x) for x in np.quantile(v, q)) for k, v in nat.items()}

    def predicted(self) -> np.ndarray:
        """Fitted loss at each point."""
        return self.law_def.predict(np.asarray(self.theta), self.points.n, self.points.d)

    def residuals(self) -> np.ndarray:
        """log(observed) - log(fitted) per point (the quantity the Huber loss sees)."""
        return np.log(self.points.loss) - np.log(self.predicted())

    def residual_summary(self) -> dict[str, float]:
        r = self.residuals()
        i = int(np.argmax(np.abs(r)))
        return {
            "n": int(len(r)),
            "rms_log": float(np.sqrt(np.mean(r**2))),
            "mean_abs_log": float(np.mean(np.abs(r))),
            "max_abs_log": float(np.abs(r[i])),
            "max_abs_label": self.points.labels[i],
            "within_delta": int(np.sum(np.abs(r) <= self.delta)),
        }

    def design(self) -> dict:
        """Rows, distinct design points, parameters, degrees of freedom and the data range (N, D, C)."""
        need_n = "N" in self.law_def.features
        distinct = distinct_points(self.points, need_n=need_n)
        return {
            "rows": len(self.points),
            "distinct_points": distinct,
            "params": self.law_def.n_params,
            "dof": distinct - self.law_def.n_params,
            "range": {k: list(v) for k, v in data_range(self.points).items()},
        }

    def to_json(self) -> dict:
        return {
            "format": "riverbed.scaling.fit/1",
            "law": self.law,
            "formula": self.law_def.formula,
            "params": self.params,
            "intervals": {k: list(v) for k, v in self.intervals().items()},
            "ci": self.ci,
            "theta": dict(zip(self.law_def.param_names, map(float, self.theta))),
            "objective": self.objective,
            "delta": self.delta,
            "loss_reduction": self.loss_reduction,
            "best_start": self.best_start,
            "n_starts": self.n_starts,
            "n_starts_at_optimum": self.n_starts_at_optimum,
            "dropped": list(self.dropped),
            "warnings": list(self.warnings),
            "design": self.design(),
            "residuals": self.residual_summary(),
            "bootstrap": None if self.bootstrap is None else self.bootstrap.tolist(),
            "bootstrap_seed": self.bootstrap_seed,
            "points": self.points.to_json(),
        }

    @classmethod
    def from_json(cls, obj: dict) -> FitResult:
        if not isinstance(obj, dict) or obj.get("format") != "riverbed.scaling.fit/1":
            raise ScalingError("not a riverbed fit file (expected format 'riverbed.scaling.fit/1')")
        law = get_law(obj["law"])
        boot = obj.get("bootstrap")
        return cls(
            law=law.name,
            theta=tuple(float(obj["theta"][k]) for k in law.param_names),
            objective=float(obj["objective"]),
            points=Points.from_json(obj["points"]),
            delta=float(obj["delta"]),
            loss_reduction=obj["loss_reduction"],
            best_start=dict(obj.get("best_start") or {}),
            n_starts=int(obj.get("n_starts", 0)),
            n_starts_at_optimum=int(obj.get("n_starts_at_optimum", 0)),
            dropped=tuple(obj.get("dropped") or ()),
            warnings=tuple(obj.get("warnings") or ()),
            bootstrap=None if boot is None else np.asarray(boot, dtype=np.float64).reshape(-1, law.n_params),
            bootstrap_seed=obj.get("bootstrap_seed"),
            ci=float(obj.get("ci", 0.95)),
        )


def _quantiles(ci: float) -> tuple[float, float]:
    if not 0 < ci < 1:
        raise ScalingError(f"ci must be in (0, 1), got {ci}")
    return ((1 - ci) / 2, 1 - (1 - ci) / 2)


def fit_law(
    points: Points,
    law: str = "chinchilla",
    *,
    grid: np.ndarray | None = None,
    delta: float = HUBER_DELTA,
    loss_reduction: str = "sum",
    bootstrap: int = 0,
    seed: int = 0,
    ci: float = 0.95,
    dropped: tuple[str, ...] = (),
    progress: bool = False,
) -> FitResult:
    """Fit ``law`` to ``points`` from every start of the grid; optionally bootstrap intervals.

    ``grid`` defaults to the law's full grid (4,500 starts for ``chinchilla``). ``bootstrap``
    resamples the points with replacement that many times (seeded by ``seed``) and refits each
    resample (see :func:`riverbed.scaling.bootstrap.bootstrap_fits`).
    """
    spec = get_law(law)
    if loss_reduction not in ("sum", "mean"):
        raise ScalingError(f"loss_reduction must be 'sum' or 'mean', got {loss_reduction!r}")
    if not delta > 0:
        raise ScalingError(f"delta must be positive, got {delta}")
    notes: list[str] = []
    if loss_reduction == "mean":
        warnings.warn(MEAN_WARNING, UserWarning, stacklevel=2)
        notes.append(MEAN_WARNING)
    need_n = "N" in spec.features
    sizes = np.unique(points.n[np.isfinite(points.n)])
    if not need_n and len(sizes) > 1:  # before validate: its distinct count sees D alone
        raise ScalingError(f"law {law!r} is for one model size; the points have {len(sizes)} sizes ({', '.join(f'{s:.4g}' for s in sizes[:6])}): fit each run separately or use --law chinchilla")
    validate(points, n_params=spec.n_params, need_n=need_n)
    design = design_warnings(points, n_params=spec.n_params, need_n=need_n)
    for note in design:
        warnings.warn(note, FitWarning, stacklevel=2)
    notes += design
    starts = spec.grid() if grid is None else np.asarray(grid, dtype=np.float64)
    if starts.ndim != 2 or starts.shape[1] != spec.n_params:
        raise ScalingError(f"grid must have shape (S, {spec.n_params}) for law {law!r}, got {starts.shape}")
    logx, logy = law_data(spec, points)
    # Optimise in centred coordinates (same law, same optima; see laws.center), report raw ones.
    k, mu = spec.n_terms, logx.mean(axis=0)
    logx_c = logx - mu
    exps, group = np.unique(starts[:, k + 1 :], axis=0, return_inverse=True)
    group = np.asarray(group).reshape(-1)

    def single(x: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = objective_and_grad(x[None], logx_c, logy, k, delta, loss_reduction)
        return float(f[0]), g[0]

    with np.errstate(all="ignore"):
        q, _ = inner_solve(exps, logx_c, logy, delta=delta, max_iter=PROJECT_ITER)
        x, f = gauss_newton(np.concatenate([q, exps], axis=1), logx_c, logy, delta=delta,
                            groups=np.zeros(len(exps), dtype=np.int64))
    f = np.where(np.isfinite(f), f, np.inf) / (len(logy) if loss_reduction == "mean" else 1)
    if not np.isfinite(f).any():
        raise ScalingError("every start diverged; check the points (loss in nats? N and D in raw counts?)")
    theta_c, f_best = _polish_best(x, f, single)
    theta, xs = uncenter(theta_c, mu, k), uncenter(x, mu, k)
    same = _same_optimum(xs, f, theta, f_best)[group]
    best_idx = _pick_start(starts, same, spec)
    notes += _boundary_warnings(starts, best_idx, spec)

    fit = FitResult(
        law=spec.name,
        theta=tuple(float(v) for v in theta),
        objective=f_best,
        points=points,
        delta=delta,
        loss_reduction=loss_reduction,
        best_start=dict(zip(spec.param_names, map(float, starts[best_idx]))),
        n_starts=len(starts),
        n_starts_at_optimum=int(same.sum()),
        dropped=tuple(dropped),
        warnings=tuple(notes),
        ci=ci,
    )
    _quantiles(ci)
    if bootstrap:
        # Warm starts: the optimum itself plus the next-best distinct optima that a resample
        # could plausibly make the best (objective within BOOTSTRAP_WINDOW of the best).
        extra = [xs[i] for i in _distinct_order(x, f)[1:3] if f[i] <= BOOTSTRAP_WINDOW * f_best]
        samples = bootstrap_fits(fit, bootstrap, seed=seed, extra_starts=extra, progress=progress)
        fit = _replace(fit, bootstrap=samples, bootstrap_seed=seed)
    return fit


def _replace(fit: FitResult, **changes) -> FitResult:
    return replace(fit, **changes)


def _distinct_order(x: np.ndarray, f: np.ndarray) -> list[int]:
    # Indices of the lowest objective per distinct optimum (parameters rounded to 1e-3).
    order = np.argsort(np.where(np.isfinite(f), f, np.inf), kind="stable")
    seen, out = set(), []
    for i in order:
        if not np.isfinite(f[i]):
            break
        key = tuple(np.round(x[i], 3))
        if key not in seen:
            seen.add(key)
            out.append(int(i))
    return out


def _polish_best(x: np.ndarray, f: np.ndarray, single) -> tuple[np.ndarray, float]:
    # Batched rows stop at a 1e-9 relative decrease, so polishing moves an optimum by far less
    # than 1 %: only distinct optima within POLISH_WINDOW of the best can still overtake it.
    best_x, best_f = None, np.inf
    order = _distinct_order(x, f)
    cutoff = f[order[0]] * (1 + POLISH_WINDOW)
    for i in [j for j in order if f[j] <= cutoff][:N_POLISH]:
        px, pf = polish(single, x[i])
        if pf < best_f:
            best_x, best_f = px, pf
    return best_x, float(best_f)


def _same_optimum(x: np.ndarray, f: np.ndarray, theta: np.ndarray, f_best: float) -> np.ndarray:
    close_f = np.isfinite(f) & (f <= f_best + 1e-6 * abs(f_best) + 1e-15)
    close_x = np.all(np.abs(x - theta) <= 1e-3 * np.maximum(1.0, np.abs(theta)), axis=1)
    same = close_f & close_x
    if not same.any():  # the polish moved past every Gauss-Newton optimum: credit the nearest one
        same[int(np.argmin(np.where(np.isfinite(f), f, np.inf)))] = True
    return same


def _on_boundary(starts: np.ndarray, spec: Law) -> np.ndarray:
    lo, hi = starts.min(axis=0), starts.max(axis=0)
    varied = hi > lo
    return np.any(varied & ((starts == lo) | (starts == hi)), axis=1)


def _pick_start(starts: np.ndarray, same: np.ndarray, spec: Law) -> int:
    # Several starts usually reach the same optimum; report an interior one when any did, so
    # the boundary warning fires only when the optimum is reachable from the edge alone.
    idx = np.flatnonzero(same)
    interior = idx[~_on_boundary(starts, spec)[idx]]
    return int(interior[0] if interior.size else idx[0])


def _boundary_warnings(starts: np.ndarray, best_idx: int, spec: Law) -> list[str]:
    if len(starts) < 2 or not _on_boundary(starts, spec)[best_idx]:
        return []
    lo, hi = starts.min(axis=0), starts.max(axis=0)
    s = starts[best_idx]
    edges = [f"{name}={s[j]:g}" for j, name in enumerate(spec.param_names) if hi[j] > lo[j] and s[j] in (lo[j], hi[j])]
    return [f"best start lies on the grid boundary ({', '.join(edges)}): no interior start reaches this optimum; widen the grid to be sure it is the global one"]
