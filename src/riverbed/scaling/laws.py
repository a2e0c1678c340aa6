"""Scaling laws as pure functions of a parameter vector, batched over many parameter vectors.

Both laws are fitted in log space with the log-sum-exp parametrisation of Chinchilla's
approach 3 (Hoffmann et al. 2022; Besiroglu et al. 2024)::

    log L_hat = LSE(c_1 - x_1 log X_1, ..., c_K - x_K log X_K, e)

so that ``L_hat = E + C_1 / X_1^x_1 + ...`` with ``E = exp(e)`` and ``C_k = exp(c_k)``.
A parameter vector is laid out ``[c_1 .. c_K, e, x_1 .. x_K]``; for ``chinchilla`` that is
Epoch AI's order ``[a, b, e, alpha, beta]`` with features ``(N, D)``, for ``data`` it is
``[b, e, beta]`` with the feature ``D``.

>>> import numpy as np
>>> law = LAWS["chinchilla"]
>>> theta = np.log([[406.4, 410.7, 1.69]]).tolist()[0] + [0.34, 0.28]
>>> round(float(law.predict(np.array(theta), n=7e10, d=1.4e12)[()]), 3)
1.937
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from riverbed.errors import ScalingError
from riverbed.scaling.robust import HUBER_DELTA, huber, huber_grad

__all__ = ["HUBER_DELTA", "LAWS", "Law", "center", "get_law", "huber", "objective_and_grad", "uncenter"]


@dataclass(frozen=True)
class Law:
    """One scaling law: its parameter names, features and initialisation grid."""

    name: str
    """``"chinchilla"`` or ``"data"``."""
    formula: str
    """Human-readable formula."""
    features: tuple[str, ...]
    """Power-law features in order, e.g. ``("N", "D")``."""
    coef_names: tuple[str, ...]
    """Log-space coefficient names, one per feature (``a`` for N, ``b`` for D)."""
    exp_names: tuple[str, ...]
    """Exponent names, one per feature (``alpha`` for N, ``beta`` for D)."""
    grid_axes: dict[str, tuple[float, ...]]
    """Initialisation grid per parameter name (background section 4)."""

    @property
    def n_terms(self) -> int:
        return len(self.features)

    @property
    def param_names(self) -> tuple[str, ...]:
        """Log-space parameter names in vector order, e.g. ``("a", "b", "e", "alpha", "beta")``."""
        return (*self.coef_names, "e", *self.exp_names)

    @property
    def n_params(self) -> int:
        return 2 * self.n_terms + 1

    def grid(self) -> np.ndarray:
        """All grid starts, shape (S, P), in vector order.

        Enumerated in Epoch AI's loop order (alpha, beta, e, a, b) so start indices match
        their notebook; the vector layout is still ``[coefs, e, exps]``.
        """
        order = (*self.exp_names, "e", *self.coef_names)
        combos = np.array(list(itertools.product(*(self.grid_axes[k] for k in order))), dtype=np.float64)
        col = {name: i for i, name in enumerate(order)}
        return combos[:, [col[name] for name in self.param_names]]

    def features_of(self, n: np.ndarray | float | None, d: np.ndarray | float) -> np.ndarray:
        """Log features, shape (..., K), from model sizes ``n`` and token counts ``d``."""
        cols = []
        for feat in self.features:
            vals = n if feat == "N" else d
            if vals is None:
                raise ValueError(f"law {self.name!r} needs {feat}")
            cols.append(np.log(np.asarray(vals, dtype=np.float64)))
        return np.stack(np.broadcast_arrays(*cols), axis=-1)

    def natural(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Named parameters in natural units (E, A, B, alpha, beta) from log-space vectors (..., P)."""
        theta = np.asarray(theta, dtype=np.float64)
        k = self.n_terms
        with np.errstate(over="ignore"):  # a degenerate refit may send a coefficient to inf
            out = {"E": np.exp(theta[..., k])}
            for i, (c, x) in enumerate(zip(self.coef_names, self.exp_names)):
                out[c.upper()] = np.exp(theta[..., i])
                out[x] = theta[..., k + 1 + i]
        return out

    def predict_log(self, theta: np.ndarray, logx: np.ndarray) -> np.ndarray:
        """log L_hat for parameter vectors (..., P) at log features (..., n, K)."""
        theta = np.asarray(theta, dtype=np.float64)
        z = _terms(theta, logx, self.n_terms)
        return _lse(z)

    def predict(self, theta: np.ndarray, n: np.ndarray | float | None = None, d: np.ndarray | float = 1.0) -> np.ndarray:
        """L_hat = E + A/N^alpha + B/D^beta at (n, d) for one parameter vector (P,)."""
        logx = self.features_of(n, d)
        shape = logx.shape[:-1]
        return np.exp(self.predict_log(theta, logx.reshape(-1, self.n_terms))).reshape(shape)


def center(theta: np.ndarray, mu: np.ndarray, k: int) -> np.ndarray:
    """Re-express ``theta`` (..., P) for features centred at ``mu`` (K,): c_j - x_j mu_j.

    The same law in shifted coordinates (z_j = c'_j - x_j (log X_j - mu_j)); it decouples the
    coefficient from its exponent (log N ~ 20 otherwise ties them), so L-BFGS needs fewer steps.
    """
    out = np.array(theta, dtype=np.float64, copy=True)
    out[..., :k] -= out[..., k + 1 :] * mu
    return out


def uncenter(theta: np.ndarray, mu: np.ndarray, k: int) -> np.ndarray:
    """Inverse of :func:`center`."""
    out = np.array(theta, dtype=np.float64, copy=True)
    out[..., :k] += out[..., k + 1 :] * mu
    return out


def _terms(theta: np.ndarray, logx: np.ndarray, k: int) -> np.ndarray:
    # z[..., i, j] = c_j - x_j * log X_ij for j < K and z[..., i, K] = e.
    c = theta[..., :k]
    e = theta[..., k]
    x = theta[..., k + 1 :]
    zc = c[..., None, :] - x[..., None, :] * logx
    ze = np.broadcast_to(e[..., None, None], zc.shape[:-1] + (1,))
    return np.concatenate([zc, ze], axis=-1)


def _lse(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))[..., 0]


def objective_and_grad(
    theta: np.ndarray,
    logx: np.ndarray,
    logy: np.ndarray,
    k: int,
    delta: float = HUBER_DELTA,
    reduction: str = "sum",
) -> tuple[np.ndarray, np.ndarray]:
    """Huber objective on log-loss residuals and its analytic gradient, batched over starts.

    ``theta`` (S, P); ``logx`` (n, K) shared or (S, n, K) per start (bootstrap resamples);
    ``logy`` (n,) or (S, n). Returns ``f`` (S,) and ``grad`` (S, P).
    """
    # One (S, n) array per term instead of a trailing axis of length K + 1: numpy reduces a
    # short trailing axis an order of magnitude slower than it combines whole arrays.
    e = theta[:, k : k + 1]
    logx_cols = [logx[..., j] for j in range(k)]
    z = [theta[:, j : j + 1] - theta[:, k + 1 + j : k + 2 + j] * logx_cols[j] for j in range(k)]
    m = e
    for zj in z:
        m = np.maximum(m, zj)
    w = [np.exp(zj - m) for zj in z]
    we = np.exp(e - m)
    s = we + sum(w)
    pred = m + np.log(s)
    r = logy - pred
    f = huber(r, delta).sum(axis=-1)
    gs = -huber_grad(r, delta) / s  # d huber / d pred, divided by the softmax denominator
    grad = np.empty_like(theta)
    for j in range(k):
        gz = gs * w[j]
        grad[:, j] = gz.sum(axis=-1)
        grad[:, k + 1 + j] = -(gz * logx_cols[j]).sum(axis=-1)
    grad[:, k] = (gs * we).sum(axis=-1)
    if reduction == "mean":
        n = logy.shape[-1]
        f, grad = f / n, grad / n
    return f, grad


_AXIS_EXP = tuple(np.arange(0.0, 2.5, 0.5))  # 0, 0.5, ..., 2
_AXIS_E = tuple(np.arange(-1.0, 1.5, 0.5))  # -1, -0.5, ..., 1
_AXIS_COEF = tuple(np.arange(0.0, 30.0, 5.0))  # 0, 5, ..., 25

LAWS: dict[str, Law] = {
    "chinchilla": Law(
        name="chinchilla",
        formula="L(N, D) = E + A/N^alpha + B/D^beta",
        features=("N", "D"),
        coef_names=("a", "b"),
        exp_names=("alpha", "beta"),
        grid_axes={"alpha": _AXIS_EXP, "beta": _AXIS_EXP, "e": _AXIS_E, "a": _AXIS_COEF, "b": _AXIS_COEF},
    ),
    "data": Law(
        name="data",
        formula="L(D) = E + B/D^beta",
        features=("D",),
        coef_names=("b",),
        exp_names=("beta",),
        grid_axes={"beta": _AXIS_EXP, "e": _AXIS_E, "b": _AXIS_COEF},
    ),
}


def get_law(name: str) -> Law:
    try:
        return LAWS[name]
    except KeyError:
        raise ScalingError(f"unknown law {name!r}; choose one of {sorted(LAWS)}") from None
