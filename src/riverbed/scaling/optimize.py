"""Batched L-BFGS: thousands of independent starts advanced together in numpy.

Epoch AI's notebook calls ``scipy.optimize.minimize(method="L-BFGS-B")`` once per grid start
(4,500 calls, finite-difference gradients): minutes of Python overhead around tiny problems.
Here every start is one row of an (S, P) array, the objective and its analytic gradient are
evaluated for all rows in one vectorised call, and each row keeps its own L-BFGS history and
its own backtracking line search. Converged rows leave the active set, so the cost shrinks as
starts finish. The best few optima are then polished with scipy's L-BFGS-B (``polish``).

>>> import numpy as np
>>> def quad(x, rows):  # f = sum (x - 3)^2
...     return ((x - 3.0) ** 2).sum(-1), 2 * (x - 3.0)
>>> res = batched_lbfgs(quad, np.zeros((4, 2)))
>>> bool(np.allclose(res.x, 3.0))
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Relative decrease below which a batched start stops. 1e-9 of the objective is ~2,000x
#: tighter than scipy's default ``ftol`` in Epoch's loop (absolute there, since f << 1).
BATCH_FTOL = 1e-9
#: Iteration cap of the batched phase: rows still crawling along a flat valley by then keep
#: their current point, which still competes for the polish below.
BATCH_MAX_ITER = 250

#: f(x_rows (R, P), row_indices (R,)) -> (f (R,), grad (R, P)); row indices let the objective
#: pick per-start data (bootstrap resamples).
BatchedFun = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class BatchResult:
    x: np.ndarray
    """Final parameters, (S, P)."""
    f: np.ndarray
    """Final objective values, (S,)."""
    n_iter: np.ndarray
    """Iterations per start, (S,)."""
    converged: np.ndarray
    """True where the gradient or relative-decrease test stopped the start, (S,)."""


def batched_lbfgs(
    fun: BatchedFun,
    x0: np.ndarray,
    *,
    memory: int = 6,
    max_iter: int = 2000,
    gtol: float = 1e-9,
    ftol: float = 1e-13,
    max_linesearch: int = 40,
) -> BatchResult:
    """Minimise ``fun`` from every row of ``x0`` independently (L-BFGS, Armijo backtracking).

    A row stops when ``max|grad| <= gtol`` or when an accepted step lowers ``f`` by less than
    ``ftol * |f|`` (relative, unlike scipy's ``max(|f|, 1)``: Huber objectives on log-loss
    residuals are far below 1, so an absolute test would stop them early), or when the line
    search cannot find a decrease (the row is at a minimum to rounding).
    """
    x = np.array(x0, dtype=np.float64, copy=True)
    s_rows, p = x.shape
    all_rows = np.arange(s_rows)
    f, g = fun(x, all_rows)
    f = np.where(np.isfinite(f), f, np.inf)
    s_hist = np.zeros((s_rows, memory, p))
    y_hist = np.zeros((s_rows, memory, p))
    rho = np.zeros((s_rows, memory))
    gamma = np.ones(s_rows)
    has_history = np.zeros(s_rows, dtype=bool)
    n_iter = np.zeros(s_rows, dtype=np.int64)
    converged = np.abs(g).max(axis=1) <= gtol
    active = ~converged & np.isfinite(f)

    for it in range(max_iter):
        rows = np.flatnonzero(active & np.isfinite(f))
        if rows.size == 0:
            break
        gr = g[rows]
        d = -_two_loop(gr, s_hist[rows], y_hist[rows], rho[rows], gamma[rows], it, memory)
        gd = (d * gr).sum(axis=1)
        bad = ~(gd < 0) | ~np.isfinite(gd)
        d[bad] = -gr[bad]
        gd[bad] = -(gr[bad] ** 2).sum(axis=1)
        # First step of a start without curvature information: scipy's 1/|g| convention.
        t = np.where(has_history[rows] & ~bad, 1.0, np.minimum(1.0, 1.0 / np.maximum(np.abs(gr).sum(axis=1), 1e-300)))

        new_x = x[rows].copy()
        new_f = f[rows].copy()
        new_g = gr.copy()
        accepted = np.zeros(rows.size, dtype=bool)
        pending = np.arange(rows.size)
        for _ in range(max_linesearch):
            idx = rows[pending]
            xt = x[idx] + t[pending, None] * d[pending]
            ft, gt = fun(xt, idx)
            ok = np.isfinite(ft) & (ft <= f[idx] + 1e-4 * t[pending] * gd[pending]) & np.isfinite(gt).all(axis=1)
            acc = pending[ok]
            new_x[acc], new_f[acc], new_g[acc] = xt[ok], ft[ok], gt[ok]
            accepted[acc] = True
            pending = pending[~ok]
            if pending.size == 0:
                break
            t[pending] *= 0.5
        # Rows whose line search failed sit at a minimum to within rounding.
        stuck = rows[~accepted]
        active[stuck] = False
        converged[stuck] = True

        acc_rows = rows[accepted]
        sv = new_x[accepted] - x[acc_rows]
        yv = new_g[accepted] - g[acc_rows]
        sy = (sv * yv).sum(axis=1)
        yy = (yv * yv).sum(axis=1)
        valid = sy > 1e-12 * np.sqrt(yy * (sv * sv).sum(axis=1))
        slot = it % memory
        s_hist[acc_rows, slot] = np.where(valid[:, None], sv, 0.0)
        y_hist[acc_rows, slot] = np.where(valid[:, None], yv, 0.0)
        valid &= yy > 0
        rho[acc_rows, slot] = np.where(valid, 1.0 / np.where(valid, sy, 1.0), 0.0)
        gamma[acc_rows] = np.where(valid, sy / np.where(valid, yy, 1.0), gamma[acc_rows])
        # The relative-decrease test only judges quasi-Newton steps: a first, steepest-descent
        # step near an optimum is tiny by construction and says nothing about convergence.
        judged = has_history[acc_rows].copy()
        has_history[acc_rows] |= valid

        f_old = f[acc_rows]
        x[acc_rows], f[acc_rows], g[acc_rows] = new_x[accepted], new_f[accepted], new_g[accepted]
        n_iter[acc_rows] += 1
        # An absolute floor of 1e-300 stops rows whose objective reaches zero (exact data).
        small_step = judged & ((f_old - f[acc_rows]) <= ftol * np.abs(f[acc_rows]) + 1e-300)
        small_step |= f[acc_rows] <= 1e-300
        small_grad = np.abs(g[acc_rows]).max(axis=1) <= gtol
        done = acc_rows[small_step | small_grad]
        active[done] = False
        converged[done] = True
    return BatchResult(x=x, f=f, n_iter=n_iter, converged=converged)


def _two_loop(g, s_hist, y_hist, rho, gamma, it, memory):
    # Standard L-BFGS two-loop recursion, vectorised over rows; the ring buffer's newest slot
    # is (it - 1) % memory. Empty or rejected slots have rho = 0 and contribute nothing.
    q = g.copy()
    order = [(it - 1 - j) % memory for j in range(min(it, memory))]
    alphas = {}
    for slot in order:
        a = rho[:, slot] * (s_hist[:, slot] * q).sum(axis=1)
        q -= a[:, None] * y_hist[:, slot]
        alphas[slot] = a
    r = gamma[:, None] * q
    for slot in reversed(order):
        b = rho[:, slot] * (y_hist[:, slot] * r).sum(axis=1)
        r += s_hist[:, slot] * (alphas[slot] - b)[:, None]
    return r


def polish(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    *,
    ftol: float = 1e-14,
    gtol: float = 1e-11,
    max_iter: int = 3000,
) -> tuple[np.ndarray, float]:
    """Refine one start with scipy's L-BFGS-B (analytic gradient, tight tolerances)."""
    from scipy.optimize import minimize  # lazy: loads scipy, which importing this module must not

    res = minimize(fun, x0, jac=True, method="L-BFGS-B", options={"ftol": ftol, "gtol": gtol, "maxiter": max_iter, "maxfun": 4 * max_iter})
    f0, _ = fun(x0)
    if not np.isfinite(res.fun) or res.fun > f0:
        return np.asarray(x0, dtype=np.float64), float(f0)
    return np.asarray(res.x, dtype=np.float64), float(res.fun)
