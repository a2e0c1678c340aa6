"""The robust loss both fitting stacks minimise: Huber on log-loss residuals.

Chinchilla's scaling-law fit (``riverbed.scaling``, L-BFGS on a batched objective) and the
loss-curve laws (``riverbed.predict``, scipy's trust-region least squares) both minimise
``sum_i huber(log pred_i - log loss_i, delta)`` with ``delta = 1e-3``; this module is that
function's one home. :func:`huber` and :func:`huber_grad` serve a gradient-based fitter;
:func:`huber_rho` is the same loss in the form scipy's ``least_squares(loss=...)`` takes, so the
cost it reports is exactly ``huber(r).sum()``.

>>> import numpy as np
>>> r = np.array([-0.01, 0.0005, 0.002])
>>> huber(r, 1e-3).tolist() == [1e-3 * (0.01 - 5e-4), 0.5 * 0.0005 ** 2, 1e-3 * (0.002 - 5e-4)]
True
>>> rho = huber_rho(1e-3)(r ** 2)
>>> bool(np.allclose(0.5 * rho[0], huber(r, 1e-3)))
True
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: Huber threshold on log-loss residuals (Chinchilla, Epoch AI, the MPL and annealing-area papers).
HUBER_DELTA = 1e-3


def huber(r: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    """Huber loss elementwise: r^2/2 inside |r| <= delta, delta (|r| - delta/2) outside."""
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def huber_grad(r: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    """d huber / d r elementwise: r clipped to [-delta, delta]."""
    return np.clip(r, -delta, delta)


def huber_rho(delta: float = HUBER_DELTA) -> Callable[[np.ndarray], np.ndarray]:
    """:func:`huber` as scipy's ``least_squares`` robust loss (with ``f_scale=1``).

    scipy calls ``rho(z)`` with ``z = r^2`` and minimises ``0.5 * sum(rho(z))``; it needs rho and
    its first two derivatives in z, stacked (3, m). Here ``rho(z) = 2 huber(sqrt(z))``.
    """

    def rho(z: np.ndarray) -> np.ndarray:
        s = np.sqrt(z)
        inside = s <= delta
        out = np.empty((3, z.size))
        safe = np.where(inside, 1.0, s)
        out[0] = np.where(inside, z, 2.0 * delta * s - delta * delta)
        out[1] = np.where(inside, 1.0, delta / safe)
        out[2] = np.where(inside, 0.0, -0.5 * delta / safe ** 3)
        return out

    return rho
