"""The final polish of a scaling fit: scipy's L-BFGS-B from one start, analytic gradient.

The grid search itself is :mod:`riverbed.scaling.varpro`; this takes its best few distinct
optima the last way down, with tolerances far tighter than scipy's defaults (the Huber
objective on log-loss residuals is ~1e-3, so scipy's absolute ``ftol`` would stop early).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


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
