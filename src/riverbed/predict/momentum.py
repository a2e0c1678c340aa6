"""The forward-momentum law (Wang et al. 2025, "Scaling and Transferability of Annealing Strategies in Large
Language Model Training", arXiv 2512.13705, AAAI 2026).

    L(n) = L0 + A S(n)^(-alpha) - C M(n)

S is the forward effect, the LR area ``sum_{i<n} eta_i``; M the annealing momentum, an Adam-style
normalised momentum of the LR decreases: with ``d_i = eta_{i-1} - eta_i``,

    m_i = beta1 m_{i-1} + (1 - beta1) d_i,    v_i = beta2 v_{i-1} + (1 - beta2) d_i^2,
    M(n) = sum_{i<n} m^_i / (sqrt(v^_i) + eps),   m^_i = m_i / (1 - beta1^t),  v^_i = v_i / (1 - beta2^t),

t counting the updates since the warmup ended (the paper's beta1 = 0.9, beta2 = 0.999). The
paper's model-size term ``B N^(-alpha_N)`` is a constant for one model and folds into L0; its
rescaling of v (a constant factor) folds into C. As for the annealing-area law, the warmup's
increases are not annealing: the momenta start at the end of the warmup. Because m^/sqrt(v^) is
scale-free, M counts decay steps weighted by how steady the decay is, not by how deep it goes:
the paper's design, and the reason this law tells a short deep decay from a long shallow one
worse than the MPL does (bench/laws.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

MOMENTUM_PARAMS = ("L0", "A", "alpha", "C")
BETA1 = 0.9
BETA2 = 0.999
EPS = 1e-8  # relative to the largest LR, so that M does not depend on the LR unit


def annealing_momentum(lr: np.ndarray, warmup: int, *, beta1: float = BETA1, beta2: float = BETA2,
                       eps: float = EPS) -> np.ndarray:
    """M(n) for n = 0..len(lr): the prefix sums of m^_i / (sqrt(v^_i) + eps max(lr)), vectorised with IIR filters."""
    lr = np.asarray(lr, dtype=np.float64)
    first = max(int(warmup), 1)
    d = np.zeros(lr.size)
    if lr.size > first:
        d[first:] = lr[first - 1 : -1] - lr[first:]
    ratio = np.zeros(lr.size)
    if lr.size > first:
        dd = d[first:]
        m = lfilter([1.0 - beta1], [1.0, -beta1], dd)
        v = lfilter([1.0 - beta2], [1.0, -beta2], dd * dd)
        t = np.arange(1, dd.size + 1, dtype=np.float64)
        m_hat = m / -np.expm1(t * np.log(beta1))
        v_hat = v / -np.expm1(t * np.log(beta2))
        ratio[first:] = m_hat / (np.sqrt(v_hat) + eps * float(lr.max()))
    return np.concatenate([[0.0], np.cumsum(ratio)])


@dataclass(frozen=True)
class MomentumTerms:
    """Parameter-free pieces of the forward-momentum law (O(N) for the whole sequence)."""

    s1: np.ndarray  # forward area at each eval point
    m: np.ndarray  # annealing momentum at each eval point

    @staticmethod
    def build(lr: np.ndarray, steps: Sequence[int], warmup: int = 0) -> MomentumTerms:
        lr = np.asarray(lr, dtype=np.float64)
        n = np.asarray(steps, dtype=np.int64)
        P = np.concatenate([[0.0], np.cumsum(lr)])
        return MomentumTerms(P[n], annealing_momentum(lr, warmup)[n])

    def loss(self, L0: float, A: float, alpha: float, C: float) -> np.ndarray:
        """L = L0 + A S^(-alpha) - C M."""
        return L0 + A * self.s1 ** (-alpha) - C * self.m

    def loss_and_jac(self, L0: float, A: float, alpha: float, C: float) -> tuple[np.ndarray, np.ndarray]:
        pw = self.s1 ** (-alpha)
        J = np.stack([np.ones_like(pw), pw, -A * pw * np.log(self.s1), -self.m], axis=1)
        return L0 + A * pw - C * self.m, J


def momentum_loss(lr: Sequence[float], steps: Sequence[int], warmup: int = 0, *, L0: float, A: float, alpha: float,
                  C: float) -> np.ndarray:
    """Forward-momentum law loss at ``steps`` (arXiv 2512.13705); see :class:`MomentumTerms`."""
    return MomentumTerms.build(np.asarray(lr, float), steps, warmup).loss(L0, A, alpha, C)


def momentum_physical(params: dict[str, float], lr_scale: float) -> dict[str, float]:
    """Forward-momentum parameters fitted on LRs divided by ``lr_scale``, in raw-LR units (M is scale-free)."""
    out = dict(params)
    out["A"] = params["A"] * lr_scale ** params["alpha"]
    return out
