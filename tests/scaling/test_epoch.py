"""Validation against Epoch AI's replication of Chinchilla approach 3 (Besiroglu et al. 2024)."""

import itertools

import numpy as np
import pytest

from riverbed.scaling import drop_highest, fit_law, load_csv

from .helpers import DATA, EPOCH

# A documented sub-grid of the 4,500 starts (alpha, beta in {0.5, 1}, e in {-0.5, 0, 0.5},
# a, b in {5, 10}): 48 interior starts inside the optimum's basin, for the tests that fit
# often; the full grid runs below (25 projected rows, a fraction of a second) and in
# bench/scaling_fit.py.
SUB_GRID = np.array([[a, b, e, al, be] for al, be, e, a, b in itertools.product((0.5, 1.0), (0.5, 1.0), (-0.5, 0.0, 0.5), (5.0, 10.0), (5.0, 10.0))])


@pytest.fixture(scope="module")
def epoch_points():
    pts, dropped = drop_highest(load_csv(DATA), 5)
    return pts, dropped


def check_epoch(fit):
    p = fit.params
    for k in ("E", "alpha", "beta"):
        assert p[k] == pytest.approx(EPOCH[k], abs=0.005), k
    for k in ("A", "B"):
        assert p[k] == pytest.approx(EPOCH[k], rel=0.05), k
    # golden values of riverbed's optimum (tighter than Epoch's rounding)
    assert p["E"] == pytest.approx(1.817218, abs=2e-5)
    assert p["alpha"] == pytest.approx(0.347310, abs=2e-5)
    assert p["beta"] == pytest.approx(0.367172, abs=2e-5)
    assert fit.objective == pytest.approx(1.0182740178e-3, rel=1e-8)


def test_epoch_points_and_dropped_rows(epoch_points):
    pts, dropped = epoch_points
    assert len(pts) == 240
    # the 5 highest losses are the first 5 data rows of the file
    assert sorted(dropped) == [f"chinchilla_svg_extracted.csv:row {k}" for k in range(1, 6)]
    np.testing.assert_allclose(pts.d[0], 9.0e18 / 6 / pts.n[0], rtol=0.2)


def test_epoch_fit_reproduced_on_subgrid(epoch_points):
    pts, dropped = epoch_points
    fit = fit_law(pts, "chinchilla", grid=SUB_GRID, dropped=dropped)
    check_epoch(fit)
    assert fit.loss_reduction == "sum"
    assert fit.n_starts == 48 and fit.n_starts_at_optimum >= 1


def test_epoch_fit_reproduced_on_full_grid(epoch_points):
    pts, dropped = epoch_points
    fit = fit_law(pts, "chinchilla", dropped=dropped)
    check_epoch(fit)
    assert fit.n_starts == 4500
    assert fit.n_starts_at_optimum >= 180  # whole exponent groups (180 starts each) reach it
    assert fit.warnings == ()  # an interior start reaches the optimum


def test_mean_reduction_is_opt_in_and_warns(epoch_points):
    pts, _ = epoch_points
    import inspect

    assert inspect.signature(fit_law).parameters["loss_reduction"].default == "sum"
    with pytest.warns(UserWarning, match="averages the Huber terms"):
        fit = fit_law(pts, "chinchilla", grid=SUB_GRID[:4], loss_reduction="mean")
    assert fit.loss_reduction == "mean"
    assert any("mean" in w for w in fit.warnings)


def test_boundary_start_warning(epoch_points):
    pts, _ = epoch_points
    # Two starts only: whichever wins lies on the (two-point) grid's boundary.
    grid = np.array([[5.0, 10.0, -0.5, 0.5, 0.5], [0.0, 0.0, 1.0, 2.0, 2.0]])
    fit = fit_law(pts, "chinchilla", grid=grid)
    assert any("grid boundary" in w for w in fit.warnings)
    assert fit.best_start == {"a": 5.0, "b": 10.0, "e": -0.5, "alpha": 0.5, "beta": 0.5}
