"""The valley law against a plain loop over its equation, its binning, its Jacobian and a fit that recovers it."""

from __future__ import annotations

import numpy as np
import pytest

from riverbed.predict import Curve, LawFit, fit_curve_law
from riverbed.predict.valley import ValleyTerms, valley_loss, valley_physical

TRUE = dict(L0=2.0, A=0.5, alpha=0.45, B=0.05, lam=20.0, p=1.7, rho=1.8)


def _naive(lr, n, L0, A, alpha, B, lam, p, rho):
    # L(n) = L0 + A S(n)^-alpha + B sum_{i<n} eta_i^rho (1 + (S(n) - S(i+1))/lam)^-p / lam, one update at a time.
    S_n = sum(lr[:n])
    hill = 0.0
    for i in range(n):
        after = S_n - sum(lr[: i + 1])
        hill += lr[i] ** rho * (1 + after / lam) ** (-p) / lam
    return L0 + A * S_n ** (-alpha) + B * hill


def _schedules():
    warm = np.linspace(0.05, 1.0, 20)
    return {
        "cosine": np.r_[warm, 0.1 + 0.45 * (1 + np.cos(np.pi * np.arange(280) / 280))],
        "constant": np.r_[warm, np.ones(280)],
        "two-stage": np.r_[warm, np.ones(120), np.full(160, 0.3)],
        "wsd": np.r_[warm, np.ones(200), np.linspace(1, 0.0, 81)[1:]],
    }


def test_matches_the_equation_term_by_term():
    for lr in _schedules().values():
        steps = [20, 90, 221, 299, 300]
        np.testing.assert_allclose(valley_loss(lr, steps, 20, **TRUE), [_naive(lr, n, **TRUE) for n in steps], rtol=1e-11)


def test_a_constant_lr_settles_to_the_stationary_hill_excess():
    # At a constant eta the hill term tends to B eta^(rho-1) / (p-1) (the sum of the kernel over the LR area).
    eta = 0.5
    lr = np.full(200_000, eta)
    t = ValleyTerms.build(lr, [200_000], 0)
    hill = t.loss(**{**TRUE, "L0": 0.0, "A": 0.0})[0]
    assert hill == pytest.approx(TRUE["B"] * eta ** (TRUE["rho"] - 1) / (TRUE["p"] - 1), rel=0.02)


def test_binned_sum_stays_close_to_the_exact_one():
    lr = np.r_[np.linspace(0.01, 1, 100), 0.1 + 0.45 * (1 + np.cos(np.pi * np.arange(20000) / 20000))]
    steps = np.linspace(200, lr.size, 40).astype(int)
    p = {**TRUE, "lam": 300.0}
    exact = ValleyTerms.build(lr, steps, 100, max_bins=10**6).loss(**p)
    binned = ValleyTerms.build(lr, steps, 100)
    assert binned.count.shape[1] < 2100 + 256 + 2 * steps.size
    np.testing.assert_allclose(binned.loss(**p), exact, rtol=1e-5)


def test_analytic_jacobian_matches_finite_differences():
    terms = ValleyTerms.build(_schedules()["wsd"], np.arange(25, 301, 11), 20)
    x = np.array(list(TRUE.values()))
    _, J = terms.loss_and_jac(*x)
    for i in range(x.size):
        h = 1e-6 * max(1.0, abs(x[i]))
        e = np.eye(x.size)[i] * h
        num = (terms.loss(*(x + e)) - terms.loss(*(x - e))) / (2 * h)
        np.testing.assert_allclose(J[:, i], num, rtol=1e-5, atol=1e-9)


def test_physical_parameters_predict_the_same_loss_in_raw_lr_units():
    lr = _schedules()["wsd"]
    s = 3e-4
    phys = valley_physical(TRUE, s)
    np.testing.assert_allclose(valley_loss(lr * s, [100, 300], 20, **phys), valley_loss(lr, [100, 300], 20, **TRUE), rtol=1e-12)


def test_fit_recovers_known_parameters_and_predicts_an_unseen_schedule():
    sch = _schedules()
    scale = 3e-4

    def curve(name):
        steps = np.arange(25, 301, 5)
        return Curve(name, sch[name] * scale, steps, ValleyTerms.build(sch[name], steps, 20).loss(**TRUE), 20)

    fit = fit_curve_law([curve(n) for n in ("cosine", "constant", "two-stage")], "valley")
    held = curve("wsd")
    err = np.abs(fit.predict(held) - held.loss) / held.loss
    assert err.max() < 1e-3
    assert fit.params["L0"] == pytest.approx(TRUE["L0"], rel=0.05)
    again = LawFit.from_json(fit.to_json())
    assert again.law == "valley" and again.params == fit.params
    np.testing.assert_allclose(again.predict(held), fit.predict(held), rtol=1e-12)
