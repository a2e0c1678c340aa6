import numpy as np
import pytest

from riverbed.errors import ScalingError
from riverbed.scaling.laws import LAWS, center, get_law, huber, objective_and_grad, uncenter


def test_chinchilla_predict_golden():
    law = LAWS["chinchilla"]
    theta = np.array([np.log(406.4), np.log(410.7), np.log(1.69), 0.34, 0.28])
    expected = 1.69 + 406.4 / 7e10**0.34 + 410.7 / 1.4e12**0.28
    assert float(law.predict(theta, 7e10, 1.4e12)) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(1.9367, abs=1e-4)


def test_data_law_predict_and_natural():
    law = LAWS["data"]
    theta = np.array([np.log(900.0), np.log(2.0), 0.3])
    assert law.param_names == ("b", "e", "beta")
    assert float(law.predict(theta, None, 1e9)) == pytest.approx(2.0 + 900.0 / 1e9**0.3)
    assert law.natural(theta)["B"] == pytest.approx(900.0)


def test_grid_is_epochs_4500_starts_in_their_order():
    g = LAWS["chinchilla"].grid()
    assert g.shape == (4500, 5)
    # vector order [a, b, e, alpha, beta]; enumeration alpha, beta, e, a, b (b fastest)
    assert g[0].tolist() == [0, 0, -1, 0, 0]
    assert g[1].tolist() == [0, 5, -1, 0, 0]
    assert g[-1].tolist() == [25, 25, 1, 2, 2]
    assert sorted(set(g[:, 3])) == [0, 0.5, 1, 1.5, 2]
    assert sorted(set(g[:, 0])) == [0, 5, 10, 15, 20, 25]
    assert LAWS["data"].grid().shape == (150, 3)


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    logx = np.log(np.stack([rng.uniform(1e7, 1e10, 30), rng.uniform(1e8, 1e11, 30)], axis=1))
    logy = np.log(rng.uniform(2, 4, 30))
    theta = np.array([[5.0, 7.0, 0.5, 0.3, 0.35], [1.0, 2.0, -0.5, 1.5, 0.2]])
    f, g = objective_and_grad(theta, logx, logy, 2)
    direct = huber(logy - LAWS["chinchilla"].predict_log(theta, logx), 1e-3).sum(axis=1)
    np.testing.assert_allclose(f, direct, rtol=1e-12)
    eps = 1e-6
    for j in range(5):
        tp, tm = theta.copy(), theta.copy()
        tp[:, j] += eps
        tm[:, j] -= eps
        fd = (objective_and_grad(tp, logx, logy, 2)[0] - objective_and_grad(tm, logx, logy, 2)[0]) / (2 * eps)
        np.testing.assert_allclose(g[:, j], fd, rtol=1e-5, atol=1e-10)


def test_mean_reduction_divides_by_n():
    logx = np.log(np.array([[1e8, 1e9], [2e8, 3e9], [4e8, 1e10]]))
    logy = np.log(np.array([3.0, 2.8, 2.5]))
    theta = np.array([[5.0, 7.0, 0.5, 0.3, 0.35]])
    fs, gs = objective_and_grad(theta, logx, logy, 2)
    fm, gm = objective_and_grad(theta, logx, logy, 2, reduction="mean")
    assert fm[0] == pytest.approx(fs[0] / 3)
    np.testing.assert_allclose(gm, gs / 3)


def test_center_roundtrip_and_same_objective():
    logx = np.log(np.array([[1e8, 1e9], [2e8, 3e9], [4e8, 1e10]]))
    logy = np.log(np.array([3.0, 2.8, 2.5]))
    theta = np.array([[5.0, 7.0, 0.5, 0.3, 0.35]])
    mu = logx.mean(axis=0)
    np.testing.assert_allclose(uncenter(center(theta, mu, 2), mu, 2), theta)
    f1, _ = objective_and_grad(theta, logx, logy, 2)
    f2, _ = objective_and_grad(center(theta, mu, 2), logx - mu, logy, 2)
    np.testing.assert_allclose(f1, f2, rtol=1e-12)


def test_unknown_law():
    with pytest.raises(ScalingError, match="unknown law 'kaplan'"):
        get_law("kaplan")
