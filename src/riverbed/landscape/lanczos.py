"""Top eigenvalues of a symmetric operator known only through matrix-vector products (Lanczos).

Lanczos with full reorthogonalisation (twice, "twice is enough"): in floating point the plain
three-term recurrence loses orthogonality and reports ghost copies of the top eigenvalue; full
reorthogonalisation costs O(n k) per step, negligible next to one Hessian-vector product.

Stopping: after every step the Ritz pairs of the tridiagonal matrix T_j give the residual bound
``|beta_j s_ji|``; the run stops when the ``top`` largest pairs are below ``tol * |theta_max|``.
Each returned eigenpair's residual ``||H v - lambda v||`` is then *measured* with one more
product (so the budget ``max_hvps`` includes ``top`` of them). If the budget runs out first, the
result says ``converged=False``: its numbers are Ritz values, not eigenvalues. Like every Krylov
method it can miss an eigenvalue whose eigenvector the random start barely touches (the bound
then certifies a lower one); a second ``seed`` is the check.

>>> import torch
>>> a = torch.diag(torch.arange(1.0, 51.0, dtype=torch.float64))
>>> s = lanczos(lambda v: a @ v, 50, top=3, max_hvps=60, seed=1, tol=1e-6)
>>> s.converged, [round(x, 6) for x in s.eigenvalues]
(True, [50.0, 49.0, 48.0])
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Spectrum:
    """The ``top`` largest (algebraic) eigenvalues found, largest first, and how they were found."""

    eigenvalues: tuple[float, ...]
    residuals: tuple[float, ...]
    """Measured ``||H v - lambda v||`` of each unit eigenvector."""
    converged: bool
    """False: the HVP budget ran out before the residual bounds met ``tol``."""
    hvps: int
    """Products used, the residual checks included."""
    iterations: int
    tol: float
    seconds: float
    eigenvectors: list[torch.Tensor] = field(default_factory=list, repr=False, compare=False)
    """Unit eigenvectors (flat float64), in the order of ``eigenvalues``; not serialised."""

    def to_json(self) -> dict[str, Any]:
        return {"eigenvalues": list(self.eigenvalues), "residuals": list(self.residuals), "converged": self.converged,
                "status": "converged" if self.converged else "did not converge", "hvps": self.hvps,
                "iterations": self.iterations, "tol": self.tol, "seconds": self.seconds}


def lanczos(matvec: Callable[[torch.Tensor], torch.Tensor], n: int, top: int = 5, *, max_hvps: int = 200,
            tol: float = 1e-4, seed: int = 0, device: torch.device | str = "cpu") -> Spectrum:
    """Top ``top`` eigenpairs of the symmetric n x n operator ``matvec`` (float64 vectors in and out)."""
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    if not 0 < tol < 1:
        raise ValueError(f"tol must be in (0, 1), got {tol}")
    top = min(top, n)
    if max_hvps < top + 1:
        raise ValueError(f"max_hvps={max_hvps} is too small for top={top} (needs at least top + 1)")
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(int(seed))
    q = torch.randn(n, generator=gen, dtype=torch.float64).to(device)
    q /= q.norm()
    basis: list[torch.Tensor] = []
    alphas: list[float] = []
    betas: list[float] = []  # betas[j] couples basis[j] and basis[j + 1]
    budget = max_hvps - top  # the residual checks are paid for up front
    converged = False
    theta = s = None
    hvps = 0
    while hvps < budget and len(basis) < n:
        basis.append(q)
        w = matvec(q).to(torch.float64)
        hvps += 1
        alpha = float(q @ w)
        alphas.append(alpha)
        stack = torch.stack(basis)
        for _ in range(2):  # full reorthogonalisation, twice
            w = w - stack.T @ (stack @ w)
        beta = float(w.norm())
        theta, s = _ritz(alphas, betas)
        k = min(top, len(alphas))
        scale = max(abs(float(theta[-1])), abs(float(theta[0])), 1e-30)
        bounds = (beta * s[-1, -k:]).abs()
        if len(alphas) >= top and bool((bounds <= tol * scale).all()):
            converged = True
            break
        if beta <= 1e-12 * scale:
            # An invariant subspace: its Ritz values are exact. Continue in a fresh random
            # direction orthogonal to it (the tridiagonal matrix gets a zero coupling).
            if len(alphas) >= top:
                converged = True
                break
            w = torch.randn(n, generator=gen, dtype=torch.float64).to(device)
            for _ in range(2):
                w = w - stack.T @ (stack @ w)
            beta_next, beta = float(w.norm()), 0.0
            q = w / beta_next
        else:
            q = w / beta
        betas.append(beta)
    if len(basis) == n and not converged:
        converged = True  # the whole space is spanned: T is H in the Lanczos basis
    assert theta is not None and s is not None
    k = min(top, len(alphas))
    order = torch.arange(len(alphas) - 1, len(alphas) - 1 - k, -1)
    stack = torch.stack(basis[:len(alphas)])
    vals, vecs, res = [], [], []
    for i in order.tolist():
        v = stack.T @ s[:, i]
        v /= v.norm()
        lam = float(theta[i])
        hv = matvec(v).to(torch.float64)
        hvps += 1
        vals.append(lam)
        vecs.append(v)
        res.append(float((hv - lam * v).norm()))
    return Spectrum(tuple(vals), tuple(res), converged, hvps, len(alphas), float(tol), time.perf_counter() - t0, vecs)


def _ritz(alphas: list[float], betas: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigen-decomposition (ascending) of the j x j tridiagonal Lanczos matrix."""
    j = len(alphas)
    t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if j > 1:
        off = torch.tensor(betas[:j - 1], dtype=torch.float64)
        t += torch.diag(off, 1) + torch.diag(off, -1)
    return torch.linalg.eigh(t)
