import numpy as np
import pytest

from riverbed.errors import ScalingError
from riverbed.scaling import FitResult, Points, frontier, optimal_allocation, predict

# Chinchilla's precise approach-3 constants (Hoffmann et al. 2022, as quoted by Epoch AI).
CHIN = {"a": 6.0073404, "b": 6.0179186, "e": 0.5267228, "alpha": 0.33917084, "beta": 0.2849083}


def chin_fit() -> FitResult:
    pts = Points.from_arrays([1e9] * 5, [1e10, 2e10, 4e10, 8e10, 1.6e11], [2.5, 2.4, 2.3, 2.2, 2.1])
    theta = tuple(CHIN[k] for k in ("a", "b", "e", "alpha", "beta"))
    return FitResult(law="chinchilla", theta=theta, objective=0.0, points=pts)


def test_frontier_chinchilla_40b():
    fp = frontier(chin_fit(), 5.76e23)
    assert fp.n_opt.value == pytest.approx(4.0e10, rel=0.05)
    assert fp.n_opt.value / 1e10 == pytest.approx(3.996, abs=0.05)
    assert fp.n_opt.value * fp.d_opt.value * 6 == pytest.approx(5.76e23)
    assert fp.n_opt.lo is None  # no bootstrap, no interval


def test_optimal_allocation_formula_golden():
    a, b, al, be = np.exp(CHIN["a"]), np.exp(CHIN["b"]), CHIN["alpha"], CHIN["beta"]
    g = (al * a / (be * b)) ** (1 / (al + be))
    n, d = optimal_allocation(a, b, al, be, 1e22)
    assert float(n) == pytest.approx(g * (1e22 / 6) ** (be / (al + be)))
    assert float(d) == pytest.approx((1e22 / 6) ** (al / (al + be)) / g)


def test_predict_without_bootstrap_and_bad_input():
    fit = chin_fit()
    est = predict(fit, 7e10, 1.4e12)
    assert est.value == pytest.approx(1.69 + 406.4 / 7e10**0.339 + 410.7 / 1.4e12**0.285, rel=2e-3)
    assert est.lo is None
    with pytest.raises(ScalingError, match="--n"):
        predict(fit, None, 1e9)
    with pytest.raises(ScalingError, match="--d must be a positive number, got -1"):
        predict(fit, 1e9, -1.0)
    with pytest.raises(ScalingError, match="--flops"):
        frontier(fit, 0.0)


def test_frontier_needs_chinchilla_law():
    pts = Points.from_arrays([1e6] * 4, [1e6, 2e6, 4e6, 8e6], [3.0, 2.8, 2.7, 2.65])
    fit = FitResult(law="data", theta=(6.0, 0.8, 0.3), objective=0.0, points=pts)
    with pytest.raises(ScalingError, match="needs the 'chinchilla' law"):
        frontier(fit, 1e18)
    assert predict(fit, None, 1e7).value == pytest.approx(np.exp(0.8) + np.exp(6.0) / 1e7**0.3)
