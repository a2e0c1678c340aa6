"""The forward-momentum law (arXiv 2512.13705) against a plain loop over its equations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from riverbed.predict import Curve, fit_curve_law
from riverbed.predict.momentum import annealing_momentum, momentum_loss, momentum_physical

TRUE = dict(L0=2.0, A=0.5, alpha=0.45, C=2e-4)


def _naive_M(lr, n, W, b1=0.9, b2=0.999, eps=1e-8):
    eps *= max(lr)
    # Adam-style moments of the LR decreases after the warmup, bias-corrected, summed one update at a time.
    m = v = M = 0.0
    t = 0
    for i in range(max(W, 1), n):
        d = lr[i - 1] - lr[i]
        t += 1
        m = b1 * m + (1 - b1) * d
        v = b2 * v + (1 - b2) * d * d
        M += (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
    return M


def _lrs():
    warm = list(np.linspace(0.05, 1.0, 20))
    return {
        "wsd": np.array(warm + [1.0] * 200 + list(np.linspace(1, 0.1, 81)[1:])),
        "cosine": np.array(warm + list(0.1 + 0.45 * (1 + np.cos(np.pi * np.arange(280) / 280)))),
        "two-stage": np.array(warm + [1.0] * 120 + [0.3] * 160),
    }


def test_momentum_matches_the_equations_term_by_term():
    for lr in _lrs().values():
        steps = [20, 21, 150, 250, 300]
        M = annealing_momentum(lr, 20)
        np.testing.assert_allclose(M[steps], [_naive_M(lr, n, 20) for n in steps], rtol=1e-10, atol=1e-12)
        want = [TRUE["L0"] + TRUE["A"] * lr[:n].sum() ** -TRUE["alpha"] - TRUE["C"] * _naive_M(lr, n, 20) for n in steps]
        np.testing.assert_allclose(momentum_loss(lr, steps, 20, **TRUE), want, rtol=1e-12)


def test_momentum_is_scale_free_and_counts_steady_decay_steps():
    lr = _lrs()["wsd"]
    M = annealing_momentum(lr, 20)
    assert M[220] == 0.0  # no decrease yet
    assert M[300] == pytest.approx(annealing_momentum(lr * 3e-4 * 1e4, 20)[300], rel=1e-12)
    # A steady linear decay from the end of the warmup: m^/sqrt(v^) is 1 at every step, so M counts the steps,
    # whatever the depth of the decay.
    for depth in (0.9, 0.1):
        lin = np.r_[np.linspace(0.05, 1.0, 20), np.linspace(1, 1 - depth, 81)[1:]]
        assert annealing_momentum(lin, 20)[100] == pytest.approx(80, rel=1e-4)


def test_physical_parameters_and_fit():
    lr = _lrs()
    s = 3e-4
    np.testing.assert_allclose(momentum_loss(lr["wsd"] * s, [300], 20, **momentum_physical(TRUE, s)),
                               momentum_loss(lr["wsd"], [300], 20, **TRUE), rtol=1e-6)
    curves = []
    for name in ("cosine", "two-stage", "wsd"):
        steps = np.arange(25, 301, 5)
        curves.append(Curve(name, lr[name] * s, steps, momentum_loss(lr[name], steps, 20, **TRUE), 20))
    fit = fit_curve_law(curves, "momentum")
    for k, v in TRUE.items():
        assert fit.params[k] == pytest.approx(v, rel=1e-3), k
