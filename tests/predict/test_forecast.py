"""The forecast engine: silent until the fit is usable, then the decay-now loss a law would give, warm-started."""

from __future__ import annotations

import numpy as np
import pytest

from riverbed.predict import Curve, LawFit
from riverbed.predict.forecast import Forecaster
from riverbed.predict.valley import ValleyTerms
from riverbed.schedules import DecayBranch, WarmupStable

TRUE = dict(L0=2.0, A=0.5, alpha=0.45, B=0.05, lam=20.0, p=1.7, rho=1.8)
PEAK, W = 3e-3, 10
MAIN = WarmupStable(warmup=W)


def _true_loss(schedule, n_total, steps):
    lr = np.array(schedule.values(n_total))
    return ValleyTerms.build(lr, steps, W).loss(**TRUE)  # LR in units of the peak, as the prior's lr_scale says


def _feed(f, upto, every=10):
    steps = np.arange(every, upto + 1, every)
    for s, y in zip(steps, _true_loss(MAIN, upto, steps)):
        f.add(int(s), float(y))
    return steps


def test_silent_before_a_usable_fit():
    prior = LawFit("valley", {**TRUE, "L0": 2.2, "A": 0.4}, PEAK)
    f = Forecaster(MAIN, PEAK, law="valley", min_points=8, prior=prior)
    _feed(f, 80)  # 7 points after the warmup
    assert f.forecast(80) is None
    # Without a prior and without a finished decay branch nothing calibrates a decay: silent however long the run.
    g = Forecaster(MAIN, PEAK, law="valley", min_points=8)
    _feed(g, 300)
    assert g.forecast(300) is None


def test_with_a_prior_the_forward_refit_recovers_the_decayed_loss():
    prior = LawFit("valley", {**TRUE, "L0": 2.3, "A": 0.3, "alpha": 0.3}, PEAK)  # right decay part, wrong forward part
    f = Forecaster(MAIN, PEAK, law="valley", decay=0.2, shape="1-sqrt", prior=prior)
    _feed(f, 400)
    fc = f.forecast(400)
    assert fc is not None and fc.calibration == "prior" and fc.decay_steps == 80 and fc.step == 400
    want = _true_loss(DecayBranch(MAIN, 400, 80, "1-sqrt"), 480, [480])[0]
    assert fc.loss == pytest.approx(want, rel=2e-3)
    assert fc.lo <= fc.loss <= fc.hi
    row = fc.row()
    assert row["kind"] == "forecast" and row["forecast_end"] == 480 and row["forecast_refit_s"] >= 0
    # The next evaluation refits from this fit (warm start) and forecasts the next step.
    for s, y in zip([410], _true_loss(MAIN, 410, [410])):
        f.add(s, float(y))
    assert f.forecast(410).decay_steps == 82


def test_with_a_finished_decay_branch_the_whole_law_is_refitted():
    branch = DecayBranch(MAIN, 200, 60, "linear")
    lr = np.array(branch.values(260))
    steps = np.arange(205, 261, 5)
    decay = Curve("linear-from200", PEAK * lr, steps, _true_loss(branch, 260, steps), W)
    f = Forecaster(MAIN, PEAK, law="valley", decay=0.2, shape="1-sqrt")
    _feed(f, 300)
    fc = f.forecast(300, decays=[decay])
    assert fc is not None and fc.calibration == "decay branches"
    want = _true_loss(DecayBranch(MAIN, 300, 60, "1-sqrt"), 360, [360])[0]
    assert fc.loss == pytest.approx(want, rel=5e-3)
    # The same branches at the next evaluation: their full fit is kept, only the forward part is refitted.
    full = f._calib[1]
    f.add(310, float(_true_loss(MAIN, 310, [310])[0]))
    nxt = f.forecast(310, decays=[decay])
    assert nxt.calibration == "decay branches" and f._calib[1] is full
    assert nxt.loss == pytest.approx(_true_loss(DecayBranch(MAIN, 310, 62, "1-sqrt"), 372, [372])[0], rel=5e-3)


def test_a_rewind_replaces_the_tail():
    f = Forecaster(MAIN, PEAK, law="valley")
    for s in (10, 20, 30):
        f.add(s, 3.0)
    f.add(20, 2.9)
    assert f.main_curve(30).steps.tolist() == [10, 20] and f.main_curve(30).loss.tolist() == [3.0, 2.9]


def test_the_monitor_calibrates_on_a_run_trees_finished_decay_branches(predict_tree):
    from riverbed.config.forecast import ForecastConfig
    from riverbed.orchestration.forecast_monitor import ForecastMonitor
    from riverbed.predict.runs import branch_curve, peak_lr
    from riverbed.runs import Run
    from riverbed.schedules import schedule_from_spec

    mon = ForecastMonitor(ForecastConfig(law="mpl"))
    decays = mon.decay_curves(predict_tree)
    assert sorted(c.name for c in decays) == ["1-sqrt-from30-len15", "1-sqrt-from30-len30", "1-sqrt-from45-len15"]
    assert mon.decay_curves(predict_tree)[0] is decays[0]  # cached: read once per finished branch
    run = Run.open(predict_tree)
    main_c = branch_curve(run, run.branch("main"))
    f = Forecaster(schedule_from_spec(run.branch("main").schedule), peak_lr(run), law="mpl")
    for s, y in zip(main_c.steps, main_c.loss):
        f.add(int(s), float(y))
    fc = f.forecast(60, decays)
    assert fc is not None and fc.calibration == "decay branches" and fc.lo <= fc.loss <= fc.hi
    assert abs(fc.loss / main_c.loss[-1] - 1) < 0.1  # the 60-step tree is noisy: a sanity bound, not a claim
    assert mon.decay_curves(predict_tree.parent / "not-a-run") == []
