"""Bootstrap refits of a loss-curve law: the spread of their predictions is a prediction's interval.

Each refit resamples the fitted curves' points with replacement and refits from the fit's own
parameters (one start, 100 evaluations), so 20 refits cost a few fits. (The scaling-law fit has its
own, batched bootstrap: ``riverbed.scaling.bootstrap``.)

>>> boot = bootstrap_curve_fits(curves, fit, n=20, seed=0)          # doctest: +SKIP
>>> np.percentile([b.predict(other)[-1] for b in boot], [2.5, 97.5])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from riverbed.io.progress import Progress
from riverbed.predict.curves import Curve
from riverbed.predict.fit import LawFit, _solve, _subsample, _terms, law_params


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


def bootstrap_curve_fits(curves: Sequence[Curve], fit: LawFit, *, n: int = 20, seed: int = 0, max_points: int = 32,
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
    terms: Any  # any law's terms (riverbed.predict.laws.LAW_SPECS builds them)
    idx: np.ndarray

    @property
    def s1(self) -> np.ndarray:
        return self.terms.s1[self.idx]

    def loss(self, **p: float) -> np.ndarray:
        return self.terms.loss(**p)[self.idx]

    def loss_and_jac(self, **p: float) -> tuple[np.ndarray, np.ndarray]:
        v, j = self.terms.loss_and_jac(**p)
        return v[self.idx], j[self.idx]
