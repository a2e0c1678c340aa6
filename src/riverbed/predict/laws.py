"""Schedule-aware loss laws: the loss after ``n`` updates as a function of the whole LR sequence.

Both laws take the per-update learning rates ``lr[0..N-1]`` (``lr[i]`` is the LR of update ``i``),
the number of warmup updates ``warmup`` and the eval points ``steps`` (the model after ``n``
updates has seen ``lr[0..n-1]``). They are pure numpy functions; the fitter calls them through
:class:`MPLTerms` / :class:`TissueTerms`, which precompute everything that does not depend on the
parameters so that one evaluation during a fit costs a few array operations.

Units: the laws are written for any LR unit; the fitter passes LRs divided by the peak LR (so the
parameters are O(1)) and converts back for reporting (:func:`mpl_physical`).

>>> import numpy as np
>>> lr = np.r_[np.linspace(0.1, 1, 10), np.ones(90), np.linspace(1, 0.1, 50)[1:]]
>>> p = dict(L0=2.0, A=0.5, alpha=0.5, B=0.4, C=2.0, beta=0.6, gamma=0.6)
>>> loss = mpl_loss(lr, [100, 149], 10, **p)
>>> bool(loss[1] < loss[0])   # the decay lowers the loss
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from riverbed.predict.momentum import MOMENTUM_PARAMS, MomentumTerms, momentum_physical
from riverbed.predict.valley import VALLEY_PARAMS, ValleyTerms, valley_physical

#: Parameter names, in the order the fitter's vectors use.
MPL_PARAMS = ("L0", "A", "alpha", "B", "C", "beta", "gamma")
TISSUE_PARAMS = ("L0", "A", "alpha", "C")
#: Tissue et al. 2024 use a momentum decay factor of 0.999 per step for the annealing area.
TISSUE_LAMBDA = 0.999
# Above this many LR-change terms the MPL's LD sum is binned (see MPLTerms); exact below.
MAX_TERMS = 2048


def _prefix(lr: np.ndarray) -> np.ndarray:
    # P[n] = sum_{i<n} lr[i]: the LR area seen by the model after n updates.
    return np.concatenate([[0.0], np.cumsum(lr, dtype=np.float64)])


@dataclass(frozen=True)
class MPLTerms:
    """Parameter-free pieces of the Multi-Power Law for one LR sequence and its eval points.

    The LD sum runs over every update ``i`` after the warmup whose LR differs from the previous
    one (``delta_i = lr[i-1] - lr[i]``), for every eval point: O(points x changes). A constant
    stretch costs nothing (delta = 0); a smooth decay of thousands of steps is binned into at
    most ``max_terms`` bins whose edges include every eval step (so no bin straddles an eval
    point), each bin carrying its summed delta at its |delta|-weighted centre. Measured against the
    exact sum (tests/predict/test_laws.py): 2048 bins move a 20000-step cosine's predictions by
    4e-6 relative, and the 400M paper curves' (cosine_72000, fitted parameters) by 3e-7.
    """

    s1_plus_sw: np.ndarray  # (m,) S1(n) + S_W
    delta: np.ndarray  # (b,) summed LR decrease per bin
    log_lr: np.ndarray  # (b,) log LR at the bin centre
    area: np.ndarray  # (m, b) S_k(n): LR area from the bin centre to n (0 where the bin is after n)
    mask: np.ndarray  # (m, b) bool: bin lies before eval point n

    @property
    def s1(self) -> np.ndarray:
        """The LR area at each eval point (the name every law's terms share)."""
        return self.s1_plus_sw

    @staticmethod
    def build(lr: np.ndarray, steps: Sequence[int], warmup: int, *, max_terms: int = MAX_TERMS) -> MPLTerms:
        lr = np.asarray(lr, dtype=np.float64)
        n = np.asarray(steps, dtype=np.int64)
        P = _prefix(lr)
        w = max(int(warmup), 0)
        s1_plus_sw = P[n]  # S1(n) + S_W = sum_{i<n} lr_i (warmup included)
        first = max(w, 1)
        idx = np.arange(first, len(lr))
        d = lr[first - 1 : len(lr) - 1] - lr[first:] if len(lr) > first else np.zeros(0)
        keep = d != 0.0
        idx, d = idx[keep], d[keep]
        if len(idx) > max_terms:
            grid = np.linspace(idx[0], idx[-1] + 1, max_terms + 1).round().astype(np.int64)
            edges = np.unique(np.concatenate([grid, n[(n > idx[0]) & (n <= idx[-1])]]))
            which = np.searchsorted(edges, idx, side="right") - 1
            nb = len(edges) - 1
            mag = np.abs(d)
            wsum = np.bincount(which, mag, nb)
            used = wsum > 0
            centre = np.bincount(which, mag * idx, nb)[used] / wsum[used]
            delta = np.bincount(which, d, nb)[used]
            lo = edges[:-1][used]
            lr_c = np.interp(centre, np.arange(len(lr)), lr)
            P_c = np.interp(centre, np.arange(len(P)), P)
        else:
            delta, lo, lr_c, P_c = d, idx, lr[idx], P[idx]
        mask = lo[None, :] < n[:, None]  # update k < n: the model after n updates has seen it
        area = np.where(mask, P[n][:, None] - P_c[None, :], 0.0)
        # A decay to zero: eta_k^-gamma is infinite at eta_k = 0. Floor it (1e-8 of the peak, so x stays finite for
        # gamma <= 2); G is then ~1 for any update after it, and exactly 0 where the area is 0.
        lr_c = np.maximum(lr_c, 1e-8 * max(float(lr.max()), 1e-300))
        return MPLTerms(s1_plus_sw, delta, np.log(lr_c), np.maximum(area, 0.0), mask)

    def loss(self, L0: float, A: float, alpha: float, B: float, C: float, beta: float, gamma: float) -> np.ndarray:
        """Multi-Power Law, Luo et al. 2025 (arXiv 2503.12811), eq. (4):

        L(t) = L0 + A (S1(t) + S_W)^(-alpha) - LD(t),
        LD(t) = B sum_{k=1..t} (eta_{k-1} - eta_k) G(eta_k^(-gamma) S_k(t)),
        G(x) = 1 - (C x + 1)^(-beta),  S_k(t) = sum_{tau=k..t} eta_tau.
        """
        x = np.exp(-gamma * self.log_lr)[None, :] * self.area
        g = -np.expm1(-beta * np.log1p(C * x))
        ld = B * (np.where(self.mask, g, 0.0) @ self.delta)
        return L0 + A * self.s1_plus_sw ** (-alpha) - ld

    def loss_and_jac(self, L0: float, A: float, alpha: float, B: float, C: float, beta: float, gamma: float) -> tuple[np.ndarray, np.ndarray]:
        """The loss and its derivatives in (L0, A, alpha, B, C, beta, gamma): one pass instead of 7 finite differences."""
        x = np.exp(-gamma * self.log_lr)[None, :] * self.area
        cx1 = np.log1p(C * x)
        q = np.where(self.mask, np.exp(-beta * cx1), 1.0)  # (1 + Cx)^-beta
        g = 1.0 - q
        dq = beta * q / (1.0 + C * x)  # dg/d(Cx) = beta (1 + Cx)^(-beta-1)
        pw = self.s1_plus_sw ** (-alpha)
        ld = g @ self.delta
        J = np.empty((pw.size, 7))
        J[:, 0] = 1.0
        J[:, 1] = pw
        J[:, 2] = -A * pw * np.log(self.s1_plus_sw)
        J[:, 3] = -ld
        J[:, 4] = -B * ((dq * x) @ self.delta)
        J[:, 5] = -B * ((q * cx1 * self.mask) @ self.delta)
        J[:, 6] = -B * ((dq * C * x * -self.log_lr[None, :]) @ self.delta)
        return L0 + A * pw - B * ld, J


@dataclass(frozen=True)
class TissueTerms:
    """Parameter-free pieces of the annealing-area law (O(N) for the whole sequence)."""

    s1: np.ndarray  # forward area at each eval point
    s2: np.ndarray  # annealing area at each eval point

    @staticmethod
    def build(lr: np.ndarray, steps: Sequence[int], warmup: int, *, lam: float = TISSUE_LAMBDA) -> TissueTerms:
        lr = np.asarray(lr, dtype=np.float64)
        n = np.asarray(steps, dtype=np.int64)
        P = _prefix(lr)
        # m_i = lam m_{i-1} + (eta_{i-1} - eta_i), counted from the end of the warmup (the warmup's
        # increases are not annealing); S2(n) = sum_{i<n} m_i.
        d = np.zeros(len(lr))
        first = max(int(warmup), 1)
        if len(lr) > first:
            d[first:] = lr[first - 1 : -1] - lr[first:]
        m = lfilter([1.0], [1.0, -lam], d)
        S2 = np.concatenate([[0.0], np.cumsum(m)])
        return TissueTerms(P[n], S2[n])

    def loss(self, L0: float, A: float, alpha: float, C: float) -> np.ndarray:
        """Annealing-area law, Tissue et al. 2024 (arXiv 2408.11029), eq. (1):

        L(s) = L0 + A S1^(-alpha) - C S2,  S1 = sum_{i<=s} eta_i (forward area),
        S2 = sum_{i<=s} m_i,  m_i = lambda m_{i-1} + (eta_{i-1} - eta_i) (annealing area, lambda 0.999).
        """
        return L0 + A * self.s1 ** (-alpha) - C * self.s2

    def loss_and_jac(self, L0: float, A: float, alpha: float, C: float) -> tuple[np.ndarray, np.ndarray]:
        pw = self.s1 ** (-alpha)
        J = np.stack([np.ones_like(pw), pw, -A * pw * np.log(self.s1), -self.s2], axis=1)
        return L0 + A * pw - C * self.s2, J


def mpl_loss(lr: Sequence[float], steps: Sequence[int], warmup: int, *, L0: float, A: float, alpha: float, B: float,
             C: float, beta: float, gamma: float, max_terms: int = MAX_TERMS) -> np.ndarray:
    """Multi-Power Law loss at ``steps`` (Luo et al. 2025, arXiv 2503.12811, eq. (4)); see :class:`MPLTerms`."""
    return MPLTerms.build(np.asarray(lr, float), steps, warmup, max_terms=max_terms).loss(L0, A, alpha, B, C, beta, gamma)


def tissue_loss(lr: Sequence[float], steps: Sequence[int], warmup: int, *, L0: float, A: float, alpha: float, C: float,
                lam: float = TISSUE_LAMBDA) -> np.ndarray:
    """Annealing-area law loss at ``steps`` (Tissue et al. 2024, arXiv 2408.11029, eq. (1)); see :class:`TissueTerms`."""
    return TissueTerms.build(np.asarray(lr, float), steps, warmup, lam=lam).loss(L0, A, alpha, C)


def mpl_physical(params: dict[str, float], lr_scale: float) -> dict[str, float]:
    """MPL parameters fitted on LRs divided by ``lr_scale``, in the units of the raw LRs.

    With eta = s u: A_u = A s^-alpha, B_u = B s, C_u = C s^(1-gamma) (L0, alpha, beta, gamma unchanged).
    """
    p = dict(params)
    s = lr_scale
    p["A"] = params["A"] * s ** params["alpha"]
    p["B"] = params["B"] / s
    p["C"] = params["C"] / s ** (1.0 - params["gamma"])
    return p


def tissue_physical(params: dict[str, float], lr_scale: float) -> dict[str, float]:
    """Annealing-area parameters fitted on LRs divided by ``lr_scale``, in raw-LR units."""
    p = dict(params)
    p["A"] = params["A"] * lr_scale ** params["alpha"]
    p["C"] = params["C"] / lr_scale
    return p


@dataclass(frozen=True)
class LawSpec:
    """One law as the fitter sees it: its parameters, their bounds, its terms, its starts, its units.

    ``build(lr, steps, warmup, lam)`` gives the law's terms (``.s1``, ``.loss(**p)``, ``.loss_and_jac(**p)``) for
    LRs divided by the fit's LR scale; ``starts(lo, span, A0, a0, s_max)`` the initial points from the lowest
    loss, the loss span, a power law in the LR area fitted by regression and the largest LR area.
    """

    name: str
    title: str
    params: tuple[str, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    build: Callable[[np.ndarray, np.ndarray, int, float | None], MPLTerms | TissueTerms | MomentumTerms | ValleyTerms]
    physical: Callable[[dict[str, float], float], dict[str, float]]
    starts: Callable[[float, float, float, float, float], list[np.ndarray]]


_INF = float("inf")
LAW_SPECS: dict[str, LawSpec] = {
    "mpl": LawSpec(
        "mpl", "Multi-Power Law (Luo et al. 2025)", MPL_PARAMS,
        (0.0, 0.0, 0.01, 0.0, 1e-8, 0.01, 0.0), (_INF, _INF, 3.0, _INF, _INF, 5.0, 2.0),
        lambda lr, st, w, lam: MPLTerms.build(lr, st, w), mpl_physical,
        lambda lo, span, A0, a0, smax: [np.array([lo - f * span, A0, a0, 0.3 * span, c, 0.5, 0.5])
                                        for f in (0.1, 0.5) for c in (0.03, 0.3)]),
    "tissue": LawSpec(
        "tissue", "annealing-area law (Tissue et al. 2024)", TISSUE_PARAMS,
        (0.0, 0.0, 0.01, 0.0), (_INF, _INF, 3.0, _INF),
        lambda lr, st, w, lam: TissueTerms.build(lr, st, w, lam=TISSUE_LAMBDA if lam is None else lam), tissue_physical,
        lambda lo, span, A0, a0, smax: [np.array([lo - f * span, A0, a0, c * span]) for f in (0.1, 0.5) for c in (1e-3, 1e-2)]),
    "momentum": LawSpec(
        "momentum", "forward-momentum law (Wang et al. 2025)", MOMENTUM_PARAMS,
        (0.0, 0.0, 0.01, 0.0), (_INF, _INF, 3.0, _INF),
        lambda lr, st, w, lam: MomentumTerms.build(lr, st, w), momentum_physical,
        lambda lo, span, A0, a0, smax: [np.array([lo - f * span, A0, a0, c * span]) for f in (0.1, 0.5) for c in (1e-5, 1e-3)]),
    "valley": LawSpec(
        "valley", "valley law (riverbed)", VALLEY_PARAMS,
        (0.0, 0.0, 0.01, 0.0, 1e-3, 0.01, 0.5), (_INF, _INF, 3.0, _INF, _INF, 10.0, 4.0),
        lambda lr, st, w, lam: ValleyTerms.build(lr, st, w), valley_physical,
        lambda lo, span, A0, a0, smax: [np.array([lo - f * span, A0, a0, 0.1 * span, c * smax, 1.5, 2.0])
                                        for f in (0.1, 0.5) for c in (0.003, 0.03)]),
}
#: Law names, in the order the CLI lists them.
LAWS = tuple(LAW_SPECS)
#: The law `riverbed predict` fits unless told otherwise: the one with the lowest held-out error on the MPL paper's
#: 400M curves (bench/laws.py, BENCHMARKS.md).
DEFAULT_LAW = "valley"
