"""Bootstrap intervals: resample the points with replacement and refit, many resamples at once.

Refitting every resample from the full 4,500-start grid would cost 4,500 x B local fits. A
resample perturbs the data only slightly, so each refit starts from the full fit's optimum
plus any other distinct optimum close enough in objective to overtake it (``extra_starts``,
so a resample can still leave the full fit's basin); all resamples x starts run as rows of one
damped Gauss-Newton (:func:`riverbed.scaling.varpro.gauss_newton`), each row with its own
resampled data; the starts of one resample that meet are merged, and the best row of each
resample is its refit.
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
from riverbed.scaling.laws import Law, center, uncenter
from riverbed.scaling.points import Points
from riverbed.scaling.varpro import gauss_newton



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

#: Resamples per batched call (bounds memory; the progress bar advances per chunk).
CHUNK = 256
#: Relative objective decrease at which a refit stops: parameters then agree to ~1e-6, far
#: inside any bootstrap interval.
BOOT_FTOL = 1e-10


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
        rows = np.repeat(idx[lo:hi], m, axis=0)  # resample j's starts are rows j*m .. j*m+m-1
        with np.errstate(all="ignore"):
            x, f = gauss_newton(np.tile(starts, (hi - lo, 1)), logx[rows], logy[rows], delta=fit.delta,
                                ftol=BOOT_FTOL, groups=np.repeat(np.arange(hi - lo), m))
        f = np.where(np.isfinite(f), f, np.inf).reshape(hi - lo, m)
        best = x.reshape(hi - lo, m, -1)[np.arange(hi - lo), f.argmin(axis=1)]
        out[lo:hi] = uncenter(best, mu, k)

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
