"""The valley law: riverbed's own schedule-aware loss law (progress along the river + a hill term with memory).

The river-valley picture (docs/background, section 2) splits the loss into progress along the
valley floor, which grows with the LR area ``S(n) = sum_{i<n} eta_i``, and a "hill" excess from
the gradient noise each update injects across the valley, which the following updates damp.
For SGD on one quadratic direction of curvature ``h`` the excess after ``n`` updates is
``sum_i eta_i^2 sigma^2 exp(-2 h (S(n) - S(i+1)))``: a kernel in the LR area travelled since
update ``i``. A gamma-distributed spectrum of curvatures turns the exponential into a power
kernel, and Adam's noise scales with a power ``rho`` of the LR rather than exactly 2, so:

    L(n) = L0 + A S(n)^(-alpha) + B sum_{i<n} eta_i^rho k(S(n) - S(i+1)),
    k(x) = (1 + x / lam)^(-p) / lam.

Seven parameters (L0, A, alpha, B, lam, p, rho), as many as the Multi-Power Law, and every
one has a meaning: lam is the LR area over which the hill forgets (in steps at the peak LR when
the LRs are divided by the peak), p how fast, rho how the injected noise grows with the LR.
At a constant LR eta the hill term settles to ``B eta^(rho-1) / (p-1)`` (the stationary excess
proportional to the LR of the river-valley derivation when rho = 2); a decay lowers it with a
lag of about ``lam / eta`` steps, which is what a decay branch's drop looks like. The structure
follows the functional scaling law's noise term (arXiv 2509.19189); the kernel, the LR power
and the fitting are riverbed's.

Past ``MAX_BINS`` updates the sum is binned (see :class:`ValleyTerms`): exact next to each eval
point, binned further back, where the kernel is smooth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

VALLEY_PARAMS = ("L0", "A", "alpha", "B", "lam", "p", "rho")
#: Above this many updates the hill sum is binned into this many bins (plus the eval steps).
MAX_BINS = 2048
_LR_FLOOR = 1e-8  # of the largest LR: a decay to zero keeps a finite log


@dataclass(frozen=True)
class ValleyTerms:
    """Parameter-free pieces of the valley law for one LR sequence and its eval points.

    Columns are groups of updates: every update when there are at most ``max_bins``; otherwise the
    ``near`` updates right before each eval point one by one (where the kernel changes fastest) and
    the earlier ones in bins whose edges include every eval step and every ``step - near``, so the
    kernel changes by at most ~p/8 across a far bin. Measured against the exact sum
    (tests/predict/test_valley.py): 2048 bins move a 20000-step cosine's predictions by < 1e-5 relative.
    """

    s1: np.ndarray  # (m,) LR area S(n) at each eval point (warmup included)
    count: np.ndarray  # (m or 1, c) updates per column
    log_lr: np.ndarray  # (m or 1, c) mean log LR of the column's updates
    area: np.ndarray  # (m, c) S(n) - S(update end), at the column's centre; 0 where masked
    mask: np.ndarray  # (m, c) bool: the column's updates all lie before eval point n

    @staticmethod
    def build(lr: np.ndarray, steps: Sequence[int], warmup: int = 0, *, max_bins: int = MAX_BINS) -> ValleyTerms:
        lr = np.asarray(lr, dtype=np.float64)
        n = np.asarray(steps, dtype=np.int64)
        N = int(n.max()) if n.size else 0
        P = np.concatenate([[0.0], np.cumsum(lr, dtype=np.float64)])
        floor = _LR_FLOOR * max(float(lr[:N].max()) if N else 1.0, 1e-300)
        logs = np.log(np.maximum(lr[:N], floor))
        if N <= max_bins:
            i = np.arange(N)
            mask = i[None, :] < n[:, None]
            area = np.where(mask, P[n][:, None] - P[i + 1][None, :], 0.0)
            return ValleyTerms(P[n], np.ones((1, N)), logs[None, :], np.maximum(area, 0.0), mask)
        near = max(256, 8 * -(-N // max_bins))
        grid = np.linspace(0, N, max_bins + 1).round().astype(np.int64)
        edges = np.unique(np.concatenate([grid, n, np.maximum(n - near, 0)]))
        lo, hi = edges[:-1], edges[1:]
        count = (hi - lo).astype(np.float64)
        clog = np.concatenate([[0.0], np.cumsum(logs)])
        ends = np.concatenate([[0.0], np.cumsum(P[1 : N + 1])])  # update i ends at area P[i+1]
        far_mask = hi[None, :] <= (n - near)[:, None]
        far_area = P[n][:, None] - ((ends[hi] - ends[lo]) / count)[None, :]
        j = n[:, None] - near + np.arange(near)[None, :]  # the near updates, one per column
        near_mask = j >= 0
        jc = np.maximum(j, 0)
        mask = np.concatenate([far_mask, near_mask], axis=1)
        area = np.where(mask, np.concatenate([far_area, P[n][:, None] - P[jc + 1]], axis=1), 0.0)
        cnt = np.concatenate([np.broadcast_to(count, far_mask.shape), np.ones(j.shape)], axis=1)
        log_lr = np.concatenate([np.broadcast_to((clog[hi] - clog[lo]) / count, far_mask.shape), logs[jc]], axis=1)
        return ValleyTerms(P[n], cnt, log_lr, np.maximum(area, 0.0), mask)

    def loss(self, L0: float, A: float, alpha: float, B: float, lam: float, p: float, rho: float) -> np.ndarray:
        """L(n) = L0 + A S(n)^(-alpha) + B sum_{i<n} eta_i^rho (1 + (S(n) - S(i+1)) / lam)^(-p) / lam."""
        w = self.count * np.exp(rho * self.log_lr)
        k = np.where(self.mask, np.exp(-p * np.log1p(self.area / lam)), 0.0) / lam
        return L0 + A * self.s1 ** (-alpha) + B * (k * w).sum(axis=1)

    def loss_and_jac(self, L0: float, A: float, alpha: float, B: float, lam: float, p: float,
                     rho: float) -> tuple[np.ndarray, np.ndarray]:
        """The loss and its derivatives in (L0, A, alpha, B, lam, p, rho)."""
        w = self.count * np.exp(rho * self.log_lr)
        lu = np.log1p(self.area / lam)
        up = np.where(self.mask, np.exp(-p * lu), 0.0)  # (1 + x/lam)^-p
        kw = up * w / lam
        noise = kw.sum(axis=1)
        pw = self.s1 ** (-alpha)
        J = np.empty((pw.size, 7))
        J[:, 0] = 1.0
        J[:, 1] = pw
        J[:, 2] = -A * pw * np.log(self.s1)
        J[:, 3] = noise
        # dk/dlam = k / lam * (p x / (lam + x) - 1)
        J[:, 4] = B * (kw / lam * (p * self.area / (lam + self.area) - 1.0)).sum(axis=1)
        J[:, 5] = -B * (kw * lu).sum(axis=1)
        J[:, 6] = B * (kw * self.log_lr).sum(axis=1)
        return L0 + A * pw + B * noise, J


def valley_loss(lr: Sequence[float], steps: Sequence[int], warmup: int = 0, *, L0: float, A: float, alpha: float,
                B: float, lam: float, p: float, rho: float, max_bins: int = MAX_BINS) -> np.ndarray:
    """Valley-law loss at ``steps`` for the per-update LRs ``lr``; see :class:`ValleyTerms`."""
    return ValleyTerms.build(np.asarray(lr, float), steps, warmup, max_bins=max_bins).loss(L0, A, alpha, B, lam, p, rho)


def valley_physical(params: dict[str, float], lr_scale: float) -> dict[str, float]:
    """Valley parameters fitted on LRs divided by ``lr_scale``, in raw-LR units.

    With eta = s u: A_s = A s^alpha, lam_s = lam s, B_s = B s^(1 - rho) (L0, alpha, p, rho unchanged).
    """
    out = dict(params)
    s = lr_scale
    out["A"] = params["A"] * s ** params["alpha"]
    out["lam"] = params["lam"] * s
    out["B"] = params["B"] * s ** (1.0 - params["rho"])
    return out
