"""Variable projection: the law is linear in (E, A, B) once the exponents are fixed.

For fixed exponents x = (alpha, beta), L_hat = E + A N^-alpha + B D^-beta is linear in
(E, A, B), so the fit splits into an inner problem -- the log coefficients q = (a, b, e) for
given x (:func:`inner_solve`) -- and an outer problem in the 2-D x. Every grid start with the
same (alpha, beta) has the same inner optimum whatever its (a, b, e), so Epoch's 4,500 starts
collapse into 25 projected starts (x, q*(x)) before any work is done. From each, the outer
search is Gauss-Newton on all 2K+1 parameters at once (:func:`gauss_newton`): at a projected
point its step in x is the reduced problem's Gauss-Newton step (the Schur complement of the
joint normal equations; Kaufman's form of variable projection), the coefficients following
along. Rows that meet are merged, so starts in one basin are solved once.

The inner problem is not linear least squares: the loss is Huber on *log* residuals. Each
step is a Gauss-Newton step of the log-sum-exp form (the Jacobian in q is the softmax of the
terms, entries in [0, 1]; in centred log features the natural-unit columns are of order one,
which makes the weighted linear least-squares start well conditioned) on the iteratively
reweighted least-squares majoriser of the Huber loss (weight 1 inside delta, delta/|r|
outside), Levenberg-Marquardt damped and taken only when it lowers the objective: one small
(P x P) solve per row, all rows at once, each row with its own data if need be (bootstrap
resamples).

>>> import numpy as np
>>> lx = np.linspace(-2, 2, 30)[:, None]; y = np.log(2.0 + 3.0 * np.exp(-0.5 * lx[:, 0]))
>>> q, f = inner_solve(np.array([[0.5]]), lx, y)
>>> np.round(np.exp(q[0]), 4).tolist()  # (B, E) at the true exponent
[3.0, 2.0]
"""

from __future__ import annotations

import numpy as np

from riverbed.scaling.laws import huber

#: Relative objective decrease below which a Gauss-Newton row stops.
GN_FTOL = 1e-14
#: Iteration cap of one inner solve (a warm-started one needs a handful).
INNER_MAX_ITER = 200


def _terms(q: np.ndarray, x: np.ndarray, lxt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Softmax weights (R, K+1, n) of the LSE terms and the prediction (R, n).

    ``q`` (R, K+1) = (c_1..c_K, e); ``x`` (R, K); ``lxt`` (K, n) or (R, K, n) centred log
    features, points last so that every reduction runs over a short middle axis of long rows.
    """
    k = x.shape[1]
    z = np.empty((q.shape[0], k + 1, lxt.shape[-1]))
    z[:, :k] = q[:, :k, None] - x[:, :, None] * lxt
    z[:, k] = q[:, k : k + 1]
    m = z.max(axis=1)
    np.exp(z - m[:, None], out=z)
    s = z.sum(axis=1)
    z /= s[:, None]
    return z, m + np.log(s)


def _huber_sum(r: np.ndarray, delta: float) -> np.ndarray:
    return huber(r, delta).sum(axis=-1)


def _weights(r: np.ndarray, delta: float) -> np.ndarray:
    # The IRLS majoriser of Huber: the quadratic through the loss at r with the same slope.
    return np.minimum(1.0, delta / np.maximum(np.abs(r), 1e-300))


def _lm_steps(jac: np.ndarray, r: np.ndarray, delta: float, lam: np.ndarray) -> np.ndarray:
    # The damped weighted normal equations, (R, P, P) per row, by batched matrix products.
    jw = jac * _weights(r, delta)[:, None, :]
    h = jw @ jac.transpose(0, 2, 1)
    g = (jw @ r[:, :, None])[..., 0]
    diag = np.einsum("rpp->rp", h)
    h = h + (lam[:, None] * diag + 1e-12 * (1.0 + diag.max(axis=1, keepdims=True)))[..., None] * np.eye(h.shape[1])
    try:
        return np.linalg.solve(h, g[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return np.stack([np.linalg.lstsq(hi, gi, rcond=None)[0] for hi, gi in zip(h, g)])


def _init_coefs(x: np.ndarray, lxt: np.ndarray, logy: np.ndarray) -> np.ndarray:
    """Log coefficients from a weighted linear least-squares fit in natural units.

    y ~ E + sum_j C_j exp(-x_j lx_j) with weights 1/y (so residuals are relative, like log
    residuals); in centred features the columns are of order one, so the small systems are
    well conditioned. Coefficients the linear fit sends below a small floor are raised to it,
    which keeps every term's softmax weight, hence its Gauss-Newton gradient, alive.
    """
    k = x.shape[1]
    y = np.exp(logy)
    cols = np.empty((x.shape[0], k + 1, lxt.shape[-1]))
    cols[:, :k] = np.exp(-x[:, :, None] * lxt)
    cols[:, k] = 1.0
    cols /= y[..., None, :]
    h = cols @ cols.transpose(0, 2, 1) + 1e-12 * np.eye(k + 1)
    c = np.linalg.solve(h, cols.sum(axis=2)[..., None])[..., 0]
    floor = 1e-3 * y.mean(axis=-1)
    return np.log(np.maximum(c, np.asarray(floor)[..., None]))


def _features(lx: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.swapaxes(lx, -1, -2))


def inner_solve(x: np.ndarray, lx: np.ndarray, logy: np.ndarray, q0: np.ndarray | None = None, *,
                delta: float = 1e-3, max_iter: int = INNER_MAX_ITER, ftol: float = GN_FTOL
                ) -> tuple[np.ndarray, np.ndarray]:
    """The best log coefficients q (R, K+1) for each row of exponents ``x`` (R, K), and f (R,).

    ``lx`` (n, K) centred log features (or (R, n, K), one data set per row), ``logy`` (n,) or
    (R, n). ``q0`` warm-starts the rows; without it the start is :func:`_init_coefs`.
    """
    x = np.asarray(x, dtype=np.float64)
    lxt = _features(lx)
    q = _init_coefs(x, lxt, logy) if q0 is None else np.array(q0, dtype=np.float64, copy=True)
    row_lx = (lambda rows: lxt) if lxt.ndim == 2 else (lambda rows: lxt[rows])
    return _gn(q, lambda qq, rows: _terms(qq, x[rows], row_lx(rows)), logy, delta, max_iter, ftol,
               lambda p, rows: p, None)


def gauss_newton(theta: np.ndarray, lx: np.ndarray, logy: np.ndarray, *, delta: float = 1e-3,
                 max_iter: int = INNER_MAX_ITER, ftol: float = GN_FTOL, groups: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Refine parameter vectors ``theta`` (R, 2K+1) (centred coordinates) by damped IRLS Gauss-Newton.

    ``lx`` (n, K) or (R, n, K) and ``logy`` (n,) or (R, n) as for :func:`inner_solve`.
    ``groups`` (R,): rows of one group fit the same data; a row that comes within ~1e-4 of a
    lower row of its group is merged into it (stops, and ends where that row ends).
    """
    theta = np.array(theta, dtype=np.float64, copy=True)
    k = (theta.shape[1] - 1) // 2
    lxt = _features(lx)
    row_lx = (lambda rows: lxt) if lxt.ndim == 2 else (lambda rows: lxt[rows])

    def jac(p: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return np.concatenate([p, -p[:, :k] * row_lx(rows)], axis=1)

    return _gn(theta, lambda t, rows: _terms(t[:, : k + 1], t[:, k + 1 :], row_lx(rows)), logy, delta, max_iter,
               ftol, jac, groups)


def _gn(v, terms, logy, delta, max_iter, ftol, jac_of, groups):
    # Damped IRLS Gauss-Newton on every row of v; rows leave the active set once converged:
    # a step that lowers f by less than ftol (relative) or moves no parameter by 1e-10, or a
    # step refused at a damping where the model no longer predicts any descent.
    rows_all = np.arange(v.shape[0])
    ly = (lambda rows: logy) if logy.ndim == 1 else (lambda rows: logy[rows])
    p, pred = terms(v, rows_all)  # kept current for every row: refreshed when a step is taken
    f = _huber_sum(ly(rows_all) - pred, delta)
    lam = np.full(v.shape[0], 1e-6)
    active = np.isfinite(f)
    parent = rows_all.copy()
    for it in range(max_iter):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        if groups is not None and it % 4 == 3:
            _merge(v, f, rows, groups, active, parent)
            rows = np.flatnonzero(active)
        step = _lm_steps(jac_of(p[rows], rows), ly(rows) - pred[rows], delta, lam[rows])
        trial = v[rows] + step
        pt, predt = terms(trial, rows)
        ft = _huber_sum(ly(rows) - predt, delta)
        ok = np.isfinite(ft) & (ft < f[rows])
        tiny = np.abs(step).max(axis=1) <= 1e-10
        done = (ok & (f[rows] - ft <= ftol * ft + 1e-300)) | tiny | (~ok & (lam[rows] >= 1e3))
        acc = rows[ok]
        v[acc], f[acc], p[acc], pred[acc] = trial[ok], ft[ok], pt[ok], predt[ok]
        lam[rows] = np.where(ok, np.maximum(lam[rows] / 4.0, 1e-9), np.maximum(lam[rows], 1e-4) * 10.0)
        active[rows[done]] = False
    if groups is not None:  # a merged row ends where the row it joined ends
        while not np.array_equal(parent[parent], parent):
            parent = parent[parent]
        v, f = v[parent], f[parent]
    return v, f


def _merge(v, f, rows, groups, active, parent):
    # Rows of one group equal to 4 decimals are one basin: keep the lowest, stop the rest.
    key = np.round(v[rows], 4)
    order = np.lexsort((f[rows],) + tuple(key.T[::-1]) + (groups[rows],))
    srt = rows[order]
    same = np.all(key[order][1:] == key[order][:-1], axis=1) & (groups[srt][1:] == groups[srt][:-1])
    if not same.any():
        return
    head = srt.copy()
    for i in np.flatnonzero(same) + 1:  # sorted: a run of equal keys shares its first row
        head[i] = head[i - 1]
    moved = head != srt
    parent[srt[moved]] = head[moved]
    active[srt[moved]] = False
