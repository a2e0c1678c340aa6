import numpy as np
import pytest

from riverbed.scaling import Points, fit_law, frontier, predict

from .helpers import synthetic
from .test_epoch import SUB_GRID

TRUE = {"E": 1.9, "A": 350.0, "alpha": 0.33, "B": 1200.0, "beta": 0.31}


@pytest.fixture(scope="module")
def chin_fit():
    n, d, loss = synthetic(TRUE, np.geomspace(1e7, 1e9, 5), np.geomspace(2e8, 2e10, 6), noise=0.005, seed=1)
    # The sub-grid keeps the suite fast; the full grid is exercised by the Epoch and CLI tests.
    return fit_law(Points.from_arrays(n, d, loss), "chinchilla", grid=SUB_GRID, bootstrap=40, seed=3)


def test_chinchilla_recovered_within_bootstrap_intervals(chin_fit):
    ci = chin_fit.intervals()
    for k, v in TRUE.items():
        lo, hi = ci[k]
        assert lo <= v <= hi, (k, lo, v, hi)
    assert chin_fit.params["E"] == pytest.approx(TRUE["E"], abs=0.1)


def test_bootstrap_is_seeded_and_chunking_free(chin_fit, monkeypatch):
    from riverbed.scaling import bootstrap

    a = bootstrap.bootstrap_fits(chin_fit, 6, seed=3)
    monkeypatch.setattr(bootstrap, "CHUNK", 4)  # resamples are drawn up front: chunks cannot matter
    np.testing.assert_allclose(bootstrap.bootstrap_fits(chin_fit, 6, seed=3), a, rtol=1e-6, atol=1e-8)
    assert not np.allclose(bootstrap.bootstrap_fits(chin_fit, 6, seed=4), a)
    assert chin_fit.bootstrap.shape == (40, 5) and chin_fit.bootstrap_seed == 3


def test_predict_and_frontier_intervals(chin_fit):
    est = predict(chin_fit, 3e9, 6e10)
    truth = TRUE["E"] + TRUE["A"] / 3e9 ** TRUE["alpha"] + TRUE["B"] / 6e10 ** TRUE["beta"]
    assert est.lo <= est.value <= est.hi
    assert est.value == pytest.approx(truth, rel=0.02)
    fp = frontier(chin_fit, 1e20)
    assert fp.n_opt.lo <= fp.n_opt.value <= fp.n_opt.hi
    assert fp.n_opt.value * fp.d_opt.value * 6 == pytest.approx(1e20, rel=1e-9)


def test_data_law_recovered_within_intervals():
    d = np.geomspace(1e6, 1e9, 14)
    true = {"E": 2.2, "B": 900.0, "beta": 0.35}
    loss = (true["E"] + true["B"] / d ** true["beta"]) * np.exp(np.random.default_rng(5).normal(0, 0.003, d.shape))
    fit = fit_law(Points.from_arrays(np.full_like(d, 1e6), d, loss), "data", bootstrap=60, seed=0)
    ci = fit.intervals()
    for k, v in true.items():
        assert ci[k][0] <= v <= ci[k][1], (k, ci[k], v)
    assert fit.n_starts == 150


def test_exact_data_is_fitted_exactly():
    n, d, loss = synthetic(TRUE, np.geomspace(1e7, 1e9, 4), np.geomspace(2e8, 2e10, 4), noise=0.0)
    fit = fit_law(Points.from_arrays(n, d, loss), "chinchilla", grid=SUB_GRID)
    for k, v in TRUE.items():
        assert fit.params[k] == pytest.approx(v, rel=1e-3), k
    assert np.abs(fit.residuals()).max() < 1e-6


def test_fit_json_roundtrip(chin_fit, tmp_path):
    from riverbed.scaling import load_fit, save_fit

    save_fit(chin_fit, tmp_path / "fit.json")
    back = load_fit(str(tmp_path / "fit.json"))
    assert back.params == pytest.approx(chin_fit.params)
    np.testing.assert_allclose(back.bootstrap, chin_fit.bootstrap)
    for k, (lo, hi) in chin_fit.intervals().items():
        assert back.intervals()[k] == pytest.approx((lo, hi))
    assert back.best_start == chin_fit.best_start
