"""Four landscape probes as functions of an Objective and parameter dicts (no files, no CLI).

* :func:`interpolate` -- the loss on the line theta(a) = (1 - a) A + a B, beyond the ends too;
* :func:`plane` -- the loss on the plane through A, B, C, with any other points projected onto it;
* :func:`sharpness` -- the top Hessian eigenvalues (Lanczos on Hessian-vector products);
* :func:`merge_taylor` -- the merge gain predicted from second-order cross terms vs measured.

Merge-Taylor (PMA, background section 3). With weights w (sum 1), the merge M = sum w_i theta_i
and deviations d_i = theta_i - M (so sum w_i d_i = 0), a second-order expansion around M with
H = H(M) gives, *exactly* for a quadratic loss whatever the reference point:

    L(M) - sum_i w_i L(theta_i)  =  1/2 [ sum_ij w_i w_j d_i^T H d_j  -  sum_i w_i d_i^T H d_i ]

Around M the double sum vanishes (sum w_i d_i = 0); the matrix C_ij = d_i^T H d_j is still the
informative part: negative off-diagonal terms are complementary deviations, the reason a merge
helps. The gain against the *newest* checkpoint needs the gradient too:
L(M) - L(theta_N) ~ -g^T d_N - 1/2 d_N^T H d_N.

>>> import torch
>>> obj = Objective([lambda p: 0.5 * (p["w"] ** 2).sum()])
>>> r = merge_taylor(obj, [{"w": torch.tensor([1.0, 0.0])}, {"w": torch.tensor([-1.0, 0.0])}])
>>> r.predicted_gain, r.measured_gain
(-0.5, -0.5)
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from riverbed.landscape.lanczos import Spectrum, lanczos
from riverbed.landscape.objective import Objective, Params, combine, dot, flatten, unflatten


# ---- interpolation ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Interpolation:
    alphas: tuple[float, ...]
    """0 = A, 1 = B; below 0 and above 1 extrapolate."""
    losses: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        i = min(range(len(self.losses)), key=self.losses.__getitem__)
        return {"alphas": list(self.alphas), "losses": list(self.losses),
                "min_alpha": self.alphas[i], "min_loss": self.losses[i]}


def line_alphas(points: int, extrapolate: float) -> list[float]:
    """``points`` evenly spaced in [0, 1] (both ends exact), extended by the same spacing to
    [-extrapolate, 1 + extrapolate].

    >>> line_alphas(3, 0.5)
    [-0.5, 0.0, 0.5, 1.0, 1.5]
    """
    if points < 2:
        raise ValueError(f"points must be >= 2, got {points}")
    if not extrapolate >= 0 or not math.isfinite(extrapolate):
        raise ValueError(f"extrapolate must be >= 0, got {extrapolate}")
    step = 1.0 / (points - 1)
    extra = int(math.floor(extrapolate / step + 1e-9))
    return [round(i * step, 12) for i in range(-extra, points + extra)]


def interpolate(obj: Objective, a: Params, b: Params, *, points: int = 21, extrapolate: float = 0.0,
                progress: Any = None) -> Interpolation:
    alphas = line_alphas(points, extrapolate)
    losses = []
    for t in alphas:
        losses.append(obj.loss(combine([a, b], [1.0 - t, t])))
        if progress is not None:
            progress()
    return Interpolation(tuple(alphas), tuple(losses))


# ---- plane --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlanePoint:
    name: str
    x: float
    y: float
    off_plane: float
    """Distance from the plane (0 for A, B, C)."""
    loss: float


@dataclass(frozen=True)
class Plane:
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    losses: tuple[tuple[float, ...], ...]
    """losses[i][j] at (xs[j], ys[i])."""
    points: tuple[PlanePoint, ...]

    def to_json(self) -> dict[str, Any]:
        return {"xs": list(self.xs), "ys": list(self.ys), "losses": [list(r) for r in self.losses],
                "points": [vars(p) for p in self.points]}


def plane(obj: Objective, a: Params, b: Params, c: Params, *, grid: int = 21, margin: float = 0.25,
          marks: Mapping[str, Params] | None = None, names: Sequence[str] = ("A", "B", "C"),
          progress: Any = None) -> Plane:
    """Loss over the plane A + x u + y v (u along B - A, v the part of C - A orthogonal to u,
    both unit vectors), on a ``grid`` x ``grid`` box around the three points and the marks."""
    if grid < 2:
        raise ValueError(f"grid must be >= 2, got {grid}")
    # The basis is built in float64: float32 rounding would tilt v out of the plane.
    a64, b64, c64 = ({k: t.double() for k, t in p.items()} for p in (a, b, c))
    ba = combine([b64, a64], [1.0, -1.0])
    ca = combine([c64, a64], [1.0, -1.0])
    nu = math.sqrt(dot(ba, ba))
    u = combine([ba], [1.0 / nu]) if nu > 0 else None
    if u is None:
        raise ValueError("plane: A and B are the same point")
    v_raw = combine([ca, u], [1.0, -dot(ca, u)])
    nv = math.sqrt(dot(v_raw, v_raw))
    eps = max(torch.finfo(t.dtype).eps for t in a.values())
    if nv <= 1e3 * eps * max(nu, math.sqrt(dot(ca, ca))):
        raise ValueError("plane: A, B and C are collinear")
    v = combine([v_raw], [1.0 / nv])

    def project(p: Params) -> tuple[float, float, float]:
        d = combine([{k: t.double() for k, t in p.items()}, a64], [1.0, -1.0])
        x, y = dot(d, u), dot(d, v)
        rest = combine([d, u, v], [1.0, -x, -y])
        return x, y, math.sqrt(max(dot(rest, rest), 0.0))

    named = [(names[0], a), (names[1], b), (names[2], c), ("merge", combine([a, b, c], [1 / 3, 1 / 3, 1 / 3]))]
    named += list((marks or {}).items())
    coords = [(n, *project(p), p) for n, p in named]
    xs_all = [x for _, x, _, _, _ in coords]
    ys_all = [y for _, _, y, _, _ in coords]
    x0, x1 = min(xs_all), max(xs_all)
    y0, y1 = min(ys_all), max(ys_all)
    span = max(x1 - x0, y1 - y0)
    mx, my = margin * max(x1 - x0, 0.1 * span), margin * max(y1 - y0, 0.1 * span)
    xs = [x0 - mx + i * (x1 - x0 + 2 * mx) / (grid - 1) for i in range(grid)]
    ys = [y0 - my + i * (y1 - y0 + 2 * my) / (grid - 1) for i in range(grid)]
    rows = []
    for y in ys:
        row = []
        for x in xs:
            row.append(obj.loss(combine([a, u, v], [1.0, x, y])))
            if progress is not None:
                progress()
        rows.append(tuple(row))
    points = tuple(PlanePoint(n, x, y, off, obj.loss(p)) for n, x, y, off, p in coords)
    return Plane(tuple(xs), tuple(ys), tuple(rows), points)


# ---- sharpness ----------------------------------------------------------------------------------

def sharpness(obj: Objective, params: Params, *, top: int = 5, max_hvps: int = 200, tol: float = 1e-4,
              seed: int = 0, progress: Any = None) -> Spectrum:
    """Top ``top`` eigenvalues of the Hessian of ``obj`` at ``params`` (riverbed.landscape.lanczos).
    ``progress`` (optional) is called after every Hessian-vector product."""
    n = sum(t.numel() for t in params.values())
    device = next(iter(params.values())).device

    def matvec(v: torch.Tensor) -> torch.Tensor:
        hv = flatten(obj.hvp(params, unflatten(v, params))).to(device)
        if progress is not None:
            progress()
        return hv

    return lanczos(matvec, n, top, max_hvps=max_hvps, tol=tol, seed=seed, device=device)


# ---- merge-Taylor -------------------------------------------------------------------------------

@dataclass(frozen=True)
class MergeTaylor:
    weights: tuple[float, ...]
    losses: tuple[float, ...]
    """L(theta_i) of each checkpoint."""
    merged_loss: float
    cross: tuple[tuple[float, ...], ...]
    """C_ij = d_i^T H(M) d_j, d_i = theta_i - M."""
    predicted_gain: float
    """1/2 [sum_ij w_i w_j C_ij - sum_i w_i C_ii]: predicted L(M) - sum w_i L(theta_i)."""
    measured_gain: float
    predicted_vs_last: float
    """-g^T d_N - 1/2 C_NN: predicted L(M) - L(theta_N) (N = the last checkpoint given)."""
    measured_vs_last: float
    hvps: int
    seconds: float = field(compare=False, default=0.0)

    def to_json(self) -> dict[str, Any]:
        return {k: ([list(r) for r in v] if k == "cross" else list(v) if isinstance(v, tuple) else v)
                for k, v in vars(self).items()}


def merge_taylor(obj: Objective, checkpoints: Sequence[Params], weights: Sequence[float] | None = None) -> MergeTaylor:
    """Predicted (second order, around the merge) and measured merge gains of ``checkpoints``."""
    k = len(checkpoints)
    if k < 2:
        raise ValueError(f"merge_taylor needs at least 2 checkpoints, got {k}")
    w = [1.0 / k] * k if weights is None else [float(x) for x in weights]
    if len(w) != k or abs(math.fsum(w) - 1.0) > 1e-9:
        raise ValueError(f"weights must be {k} numbers summing to 1, got {w}")
    t0, h0 = time.perf_counter(), obj.hvp_count
    merged = combine(list(checkpoints), w)
    devs = [combine([p, merged], [1.0, -1.0]) for p in checkpoints]
    hd = [obj.hvp(merged, d) for d in devs]
    cross = tuple(tuple(dot(devs[i], hd[j]) for j in range(k)) for i in range(k))
    # C is symmetric up to rounding; use its symmetric part so the prediction does not depend on order.
    sym = [[0.5 * (cross[i][j] + cross[j][i]) for j in range(k)] for i in range(k)]
    predicted = 0.5 * (math.fsum(w[i] * w[j] * sym[i][j] for i in range(k) for j in range(k))
                       - math.fsum(w[i] * sym[i][i] for i in range(k)))
    losses = tuple(obj.loss(p) for p in checkpoints)
    merged_loss = obj.loss(merged)
    g = obj.grad(merged)
    pred_last = -dot(g, devs[-1]) - 0.5 * sym[-1][-1]
    return MergeTaylor(tuple(w), losses, merged_loss, cross, predicted,
                       merged_loss - math.fsum(wi * li for wi, li in zip(w, losses)), pred_last,
                       merged_loss - losses[-1], obj.hvp_count - h0, time.perf_counter() - t0)
