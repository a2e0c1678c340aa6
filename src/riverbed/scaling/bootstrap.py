"""Bootstrap intervals: resample the points with replacement and refit, many resamples at once.

Refitting every resample from the full 4,500-start grid would cost 4,500 x B local fits. A
resample perturbs the data only slightly, so each refit starts from the full fit's optimum
plus the grid starts that led to the best two distinct optima (``extra_starts``, so a
resample can still leave the full fit's basin); all resamples x starts run as rows of one
batched L-BFGS, each row with its own resampled data, and scipy's L-BFGS-B polishes the best
row of each resample.
The resample indices are drawn up front from ``seed``, so the result does not depend on how
the rows are chunked (chunks are independent and could run in parallel processes).

>>> import numpy as np
>>> from riverbed.scaling.fit import fit_law
>>> from riverbed.scaling.points import Points
>>> d = np.geomspace(1e8, 1e10, 12); loss = 2.0 + 900 / d**0.3
>>> fit = fit_law(Points.from_arrays(np.full(12, 1e8), d, loss), "data", bootstrap=20)
>>> fit.bootstrap.shape
(20, 3)
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from riverbed.errors import ScalingError
from riverbed.io.progress import Progress
from riverbed.scaling.laws import Law, center, objective_and_grad, uncenter
from riverbed.scaling.optimize import BATCH_FTOL, BATCH_MAX_ITER, batched_lbfgs, polish
from riverbed.scaling.points import Points



class FitLike(Protocol):
    """What a bootstrap needs of a fit (riverbed.scaling.fit.FitResult, which calls this module)."""

    @property
    def law_def(self) -> Law: ...
    @property
    def points(self) -> Points: ...
    @property
    def theta(self) -> tuple[float, ...]: ...
    @property
    def delta(self) -> float: ...
    @property
    def loss_reduction(self) -> str: ...

#: Resamples per batched call (bounds memory; the progress bar advances per chunk).
CHUNK = 64


def resample_indices(n_points: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_points) indices drawn with replacement; a pure function of the seed."""
    return np.random.default_rng(seed).integers(0, n_points, size=(n_boot, n_points))


def law_data(law: Law, points: Points) -> tuple[np.ndarray, np.ndarray]:
    """Log features (n, K) and log losses (n,) of ``points`` for ``law``."""
    return law.features_of(points.n, points.d), np.log(points.loss)


def bootstrap_fits(fit: FitLike, n_boot: int, *, seed: int = 0, extra_starts: np.ndarray | None = None, progress: bool = False) -> np.ndarray:
    """Refit ``fit``'s law on ``n_boot`` resamples of its points; returns (n_boot, P) log-space vectors."""
    if n_boot < 2:
        raise ScalingError(f"--bootstrap needs at least 2 resamples, got {n_boot}")
    spec = fit.law_def
    k = spec.n_terms
    logx, logy = law_data(spec, fit.points)
    mu = logx.mean(axis=0)
    logx = logx - mu  # centred coordinates, as in fit_law
    starts = [np.asarray(fit.theta, dtype=np.float64)]
    if extra_starts is not None:
        starts += [np.asarray(s, dtype=np.float64) for s in extra_starts]
    starts = center(np.stack(starts), mu, k)
    m = len(starts)
    idx = resample_indices(len(fit.points), n_boot, seed)
    out = np.empty((n_boot, spec.n_params))

    def chunk_fit(lo: int, hi: int) -> None:
        bx, by = logx[idx[lo:hi]], logy[idx[lo:hi]]  # (b, n, K), (b, n)

        def fun(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            r = rows // m
            return objective_and_grad(x, bx[r], by[r], k, fit.delta, fit.loss_reduction)

        x0 = np.tile(starts, (hi - lo, 1))
        with np.errstate(all="ignore"):
            res = batched_lbfgs(fun, x0, ftol=BATCH_FTOL, gtol=1e-10, max_iter=BATCH_MAX_ITER)
        f = np.where(np.isfinite(res.f), res.f, np.inf).reshape(hi - lo, m)
        best = res.x.reshape(hi - lo, m, -1)[np.arange(hi - lo), f.argmin(axis=1)]
        # The batched stop can halt early in the flat a-alpha valley; scipy finishes each refit.
        for j in range(hi - lo):

            def single(x: np.ndarray, j=j) -> tuple[float, np.ndarray]:
                fj, gj = objective_and_grad(x[None], bx[j], by[j], k, fit.delta, fit.loss_reduction)
                return float(fj[0]), gj[0]

            out[lo + j] = uncenter(polish(single, best[j])[0], mu, k)

    chunks = [(lo, min(lo + CHUNK, n_boot)) for lo in range(0, n_boot, CHUNK)]
    if progress:
        with Progress(transient=True) as bar:
            task = bar.add(f"bootstrap ({n_boot} refits)", n_boot, unit="refits")
            for lo, hi in chunks:
                chunk_fit(lo, hi)
                bar.advance(task, hi - lo)
    else:
        for lo, hi in chunks:
            chunk_fit(lo, hi)
    return out
