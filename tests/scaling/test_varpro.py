"""Variable projection: the inner solve at fixed exponents, the joint Gauss-Newton, merging."""

import numpy as np
import pytest
from scipy.optimize import minimize

from riverbed.scaling import drop_highest, load_csv
from riverbed.scaling.laws import LAWS, objective_and_grad
from riverbed.scaling.varpro import gauss_newton, inner_solve

from .helpers import DATA


@pytest.fixture(scope="module")
def epoch():
    pts, _ = drop_highest(load_csv(DATA), 5)
    lx = LAWS["chinchilla"].features_of(pts.n, pts.d)
    return pts, lx - lx.mean(axis=0), np.log(pts.loss)


def test_inner_solve_matches_scipy_at_fixed_exponents(epoch):
    _, lx, ly = epoch
    xs = np.array([[0.3473, 0.3672], [0.5, 0.5], [1.0, 0.5], [0.0, 1.5]])
    q, f = inner_solve(xs, lx, ly)
    for x, qi, fi in zip(xs, q, f):
        def fq(v, x=x):
            fv, g = objective_and_grad(np.concatenate([v, x])[None], lx, ly, 2)
            return float(fv[0]), g[0, :3]

        ref = minimize(fq, qi + 0.3, jac=True, method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000})
        assert fi <= ref.fun * (1 + 1e-9)  # the inner optimum, not a point short of it
        assert fq(qi)[0] == pytest.approx(fi, rel=1e-12)


def test_inner_solve_recovers_exact_coefficients():
    lx = np.linspace(-2, 2, 40)
    lx2 = np.stack([lx, np.cos(3 * lx)], axis=1)
    y = np.log(1.5 + 2.0 * np.exp(-0.3 * lx2[:, 0]) + 0.7 * np.exp(-1.1 * lx2[:, 1]))
    q, f = inner_solve(np.array([[0.3, 1.1]]), lx2, y)
    np.testing.assert_allclose(np.exp(q[0]), [2.0, 0.7, 1.5], rtol=1e-7)
    assert f[0] < 1e-20


def test_gauss_newton_rows_use_their_own_data_and_merge_within_a_group(epoch):
    _, lx, ly = epoch
    th = np.array([-0.97, -0.98, 0.6, 0.35, 0.37])
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(ly), size=(2, len(ly)))
    rows = np.repeat(idx, 3, axis=0)
    starts = np.tile(np.stack([th, th + 1e-3, th - 2e-3]), (2, 1))
    x, f = gauss_newton(starts, lx[rows], ly[rows], groups=np.repeat([0, 1], 3))
    # one resample's three starts end at one optimum; the two resamples end at different ones
    assert np.abs(x[:3] - x[0]).max() <= 1e-6 and np.abs(x[3:] - x[3]).max() <= 1e-6
    assert np.abs(x[0] - x[3]).max() > 1e-3
    alone, _ = gauss_newton(th[None], lx[idx[1]], ly[idx[1]])
    np.testing.assert_allclose(x[3], alone[0], atol=1e-6)
