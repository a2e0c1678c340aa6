import numpy as np

from riverbed.scaling.optimize import batched_lbfgs, polish


def rosenbrock(x, rows):
    a, b = x[:, 0], x[:, 1]
    f = (1 - a) ** 2 + 100 * (b - a * a) ** 2
    g = np.stack([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)], axis=1)
    return f, g


def test_batched_lbfgs_solves_each_row():
    x0 = np.array([[-1.2, 1.0], [0.0, 0.0], [2.0, 2.0], [1.0, 1.0]])
    res = batched_lbfgs(rosenbrock, x0)
    np.testing.assert_allclose(res.x, 1.0, atol=1e-5)
    assert res.converged.all()
    assert res.n_iter[3] == 0  # already at the minimum


def test_rows_use_their_own_data():
    targets = np.array([[1.0, -2.0], [3.0, 4.0], [-5.0, 0.5]])

    def fun(x, rows):
        t = targets[rows]
        return ((x - t) ** 2).sum(1), 2 * (x - t)

    res = batched_lbfgs(fun, np.zeros((3, 2)))
    np.testing.assert_allclose(res.x, targets, atol=1e-7)


def test_polish_never_returns_worse_point():
    def fun(x):
        f, g = rosenbrock(x[None], None)
        return float(f[0]), g[0]

    x, f = polish(fun, np.array([-1.2, 1.0]))
    assert f < 1e-12
    np.testing.assert_allclose(x, 1.0, atol=1e-5)
