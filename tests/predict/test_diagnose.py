"""Fit diagnostics and refusal: fabricated inputs that must come out unreliable, law-drawn curves that must not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from riverbed.predict import Curve, LawFit, PredictError, UnreliableFit, fit_curve_law, read_curve_csv
from riverbed.predict.diagnose import check_loss
from riverbed.predict.laws import mpl_loss
from riverbed.predict.runs import predict_curve

TRUE = dict(L0=2.0, A=3.0, alpha=0.4, B=0.3, C=0.02, beta=0.6, gamma=0.5)
WARMUP, N = 50, 3000
SPARSE = Path(__file__).parent / "data" / "sparse"


def _lr(decay_from: int | None, decay_len: int = 0, shape: str = "linear") -> np.ndarray:
    lr = np.r_[np.linspace(0.02, 1, WARMUP), np.ones(N - WARMUP)]
    if decay_from is not None:
        t = np.arange(decay_len) / decay_len
        lr[decay_from:decay_from + decay_len] = 1 - t if shape == "linear" else 1 - np.sqrt(t)
        lr[decay_from + decay_len:] = 0.0
        lr = lr[:decay_from + decay_len]
    return lr


def _law_curve(name: str, lr: np.ndarray, every: int = 25, noise: float = 2e-4, seed: int = 0, **p: float) -> Curve:
    steps = np.arange(WARMUP + every, lr.size + 1, every)
    loss = mpl_loss(lr, steps, WARMUP, **{**TRUE, **p})
    loss = loss * np.exp(np.random.default_rng(seed).normal(0, noise, loss.size))
    return Curve(name, lr, steps, loss, WARMUP)


@pytest.fixture(scope="module")
def law_curves() -> list[Curve]:
    # Decays of three lengths (100, 600, 1500 steps): the decay terms' shape needs more than one.
    return [_law_curve("main", _lr(None), seed=1), _law_curve("wsd", _lr(2000, 600, "1-sqrt"), seed=2),
            _law_curve("short", _lr(1000, 100), seed=3, every=10), _law_curve("long", _lr(1400, 1500), seed=4)]


def test_curves_drawn_from_the_law_are_usable_with_the_true_parameters_inside_their_intervals(law_curves):
    fit = fit_curve_law(law_curves, "mpl")
    d = fit.diagnostics
    assert d.verdict == "usable" and d.reasons == () and d.has_decay and d.dof == d.points - 7
    for c in d.params:
        assert c.pinned and c.bound is None
        assert c.lo <= TRUE[c.name] <= c.hi, (c.name, c.lo, TRUE[c.name], c.hi)
    assert fit.require_usable() is fit
    # The prediction of a held-out schedule carries an interval (linearised here) that holds the truth.
    lr = _lr(1500, 400, "1-sqrt")
    truth = mpl_loss(lr, [lr.size], WARMUP, **TRUE)[-1]
    pred = predict_curve(fit, Curve("held", lr, np.array([lr.size]), np.array([np.nan]), WARMUP))
    assert pred.interval == "linearised" and pred.final_lo <= truth <= pred.final_hi
    assert LawFit.from_json(fit.to_json()).diagnostics == d


def test_too_few_points_are_unreliable_and_fewer_than_the_parameters_are_refused():
    few = [_law_curve("main", _lr(None), every=500), _law_curve("wsd", _lr(2000, 600), every=400)]
    d = fit_curve_law(few, "mpl").diagnostics
    assert d.points < 14 and d.verdict == "unreliable"
    assert any(r.startswith(f"too few points: {d.points} fitted points for 7 parameters") for r in d.reasons)
    five = Curve("a", _lr(2000, 600), np.array([600, 1200, 1800, 2400, 2600]), np.full(5, 2.5), WARMUP)
    with pytest.raises(PredictError, match="too few eval points to fit the mpl law: 5 .*need more than 7"):
        fit_curve_law([five], "mpl")


def test_a_constant_curve_is_unreliable():
    lr = _lr(2000, 600)
    steps = np.arange(100, lr.size + 1, 25)
    flat = Curve("flat", lr, steps, np.full(steps.size, 3.0), WARMUP)
    for law in ("mpl", "tissue"):
        d = fit_curve_law([flat], law).diagnostics
        assert d.verdict == "unreliable", law
        assert d.at_bounds or d.unpinned


def test_a_curve_with_a_spike_is_unreliable(law_curves):
    spiky = law_curves[0]
    loss = spiky.loss.copy()
    k = int(np.searchsorted(spiky.steps, 1500))
    loss[k] *= 1.4
    bad = Curve("main", spiky.lr, spiky.steps, loss, WARMUP)
    d = fit_curve_law([bad] + law_curves[1:], "mpl").diagnostics
    assert d.verdict == "unreliable"
    assert any(r.startswith(f"curve main: a spike at step {spiky.steps[k]}") for r in d.reasons), d.reasons


def test_the_readme_cadence_on_a_tiny_run_is_refused_with_its_reasons():
    curves = [read_curve_csv(SPARSE / "main.csv"), read_curve_csv(SPARSE / "decay.csv")]
    fit = fit_curve_law(curves, "mpl")
    d = fit.diagnostics
    assert d.verdict == "unreliable" and d.points == 8 and d.dof == 1
    assert "L0" in d.at_bounds and "L0" in d.unpinned
    with pytest.raises(UnreliableFit, match="too few points: 8 fitted points for 7 parameters.*L0 = .* at its lower bound 0"):
        fit.require_usable()
    forced = fit.require_usable(force=True)
    assert forced.forced and '"forced": true' in forced.to_json()


def test_a_prediction_that_is_no_loss_is_never_an_answer():
    check_loss(np.array([2.5, 2.4]), "x", 3.0)
    with pytest.raises(PredictError, match="x: the predicted loss is not finite"):
        check_loss(np.array([2.0, np.inf]), "x", 3.0)
    with pytest.raises(PredictError, match="negative or zero"):
        check_loss(np.array([2.0, -7.1e13]), "x", 3.0)
    with pytest.raises(PredictError, match="above the highest loss the law was fitted on"):
        check_loss(np.array([2.0, 3.5]), "x", 3.0)
    # Through a fit: an annealing-area law whose decay term runs away predicts a negative loss, refused even forced.
    from riverbed.predict.fit import CurveResiduals

    fit = LawFit("tissue", {"L0": 0.1, "A": 1.0, "alpha": 0.5, "C": 10.0}, 1.0, None,
                 (CurveResiduals("a", (100,), (3.0,), (3.0,)),), forced=True)
    lr = _lr(1000, 500)
    with pytest.raises(PredictError, match="negative or zero"):
        predict_curve(fit, Curve("long", lr, np.array([lr.size]), np.array([np.nan]), WARMUP))
