"""`riverbed predict forecast`: the forecast monitor replayed over a logged main branch (a log with a prior,
a run with decay branches), silent until usable, each forecast using only what was known at its step."""

from __future__ import annotations

import json

import numpy as np
import pytest

from riverbed.cli.main import main
from riverbed.predict import LawFit, PredictError
from riverbed.predict.replay import replay_forecast
from riverbed.predict.valley import ValleyTerms
from riverbed.schedules import DecayBranch, WarmupStable

TRUE = dict(L0=2.0, A=0.5, alpha=0.45, B=0.05, lam=20.0, p=1.7, rho=1.8)
PEAK, W = 3e-3, 10
MAIN = WarmupStable(warmup=W)


def _true_loss(schedule, n_total, steps):
    lr = np.array(schedule.values(n_total))
    return ValleyTerms.build(lr, np.asarray(steps), W).loss(**TRUE)


def _log(tmp_path, upto=400, every=10):
    """A step,lr,loss CSV of a constant-LR main branch whose loss is the valley law's own."""
    steps = np.arange(every, upto + 1, every)
    loss = _true_loss(MAIN, upto, steps)
    lr = PEAK * np.array(MAIN.values(upto + 1))
    rows = ["step,lr,loss"] + [f"{s},{float(lr[s - 1])!r},{float(y)!r}" for s, y in zip(steps, loss)]
    path = tmp_path / "log.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_log_with_a_prior_forecasts_the_laws_own_decayed_loss_and_is_silent_before(tmp_path):
    prior = LawFit("valley", {**TRUE, "L0": 2.3, "A": 0.3, "alpha": 0.3}, PEAK)  # right decay part, wrong forward part
    r = replay_forecast(_log(tmp_path), prior=prior, decay_fraction=0.2, min_points=8, warmup_steps=W)
    # Eval points every 10 steps, warmup 10: the 8th point after the warmup is step 90.
    assert r.first == 90 and [f.step for f in r.forecasts] == list(range(90, 401, 10))
    last = r.forecasts[-1]
    want = _true_loss(DecayBranch(MAIN, 400, 100, "1-sqrt"), 500, [500])[0]  # 20 % of the budget: 100 of 500
    assert last.decay_steps == 100 and last.calibration == "prior" and last.loss == pytest.approx(want, rel=2e-3)
    assert all(f.lo <= f.loss <= f.hi for f in r.forecasts)
    assert r.checks == () and r.to_dict()["first_forecast_step"] == 90


def test_a_log_needs_a_prior_and_a_bad_fraction_is_refused(tmp_path):
    log = _log(tmp_path)
    with pytest.raises(PredictError, match="give --prior"):
        replay_forecast(log, warmup_steps=W)
    with pytest.raises(PredictError, match="--decay-fraction"):
        replay_forecast(log, prior=LawFit("valley", TRUE, PEAK), decay_fraction=1.5)


def test_the_cli_writes_json_and_a_plot_and_never_over_an_input(tmp_path, capsys):
    log = _log(tmp_path)
    prior = tmp_path / "law.json"
    prior.write_text(LawFit("valley", TRUE, PEAK).to_json())
    out, png = tmp_path / "f.json", tmp_path / "f.png"
    assert main(["predict", "forecast", str(log), "--prior", str(prior), "--warmup-steps", str(W), "--json",
                 "-o", str(out), "--plot", str(png)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == json.loads(out.read_text()) and doc["law"] == "valley" and doc["forced"] is False
    assert doc["forecasts"][0]["step"] == 90 and png.read_bytes()[:4] == b"\x89PNG"
    before = log.read_bytes()
    assert main(["predict", "forecast", str(log), "--prior", str(prior), "-o", str(log)]) == 2
    assert log.read_bytes() == before


def test_a_run_calibrates_on_its_decay_branches_once_they_ended_and_is_checked_against_them(run_copy, capsys):
    """The tiny run (4 steps, eval every 2) trained on to 16 steps with an eval every step; decay branches
    from 4 (ends 5) and from 12 (ends 15): forecasts before step 5 have nothing to calibrate on, the one at
    step 12 is scored against the branch that decays from 12 over 3 steps (20 % of the budget 15)."""
    r = run_copy / "r"
    assert main(["train", str(run_copy / "t.toml"), "--run", str(r), "--set", "train.max_steps=16", "--set",
                 "train.eval_every=1", "--set", "train.ckpt_every=4", "--no-progress"]) == 0
    assert main(["branch", str(r), "--from", "4", "--shape", "1-sqrt", "--length", "1", "--eval-every", "1", "--no-progress"]) == 0
    assert main(["branch", str(r), "--from", "12", "--shape", "1-sqrt", "--length", "3", "--eval-every", "1", "--no-progress"]) == 0
    capsys.readouterr()
    rep = replay_forecast(r, law="mpl", decay_fraction=0.2, min_points=4)
    assert rep.forecasts and all(f.step >= 5 for f in rep.forecasts)  # nothing calibrates a decay before one ended
    assert all(f.calibration == "decay branches" for f in rep.forecasts)
    [check] = rep.checks
    assert (check.branch, check.fork, check.end) == ("1-sqrt-from12-len3", 12, 15)
    at12 = next(f for f in rep.forecasts if f.step == 12)
    assert check.forecast == at12.loss
    assert main(["predict", "forecast", str(r), "--law", "mpl", "--min-points", "4", "--no-progress"]) == 0
    assert "check 1-sqrt-from12-len3: forecast at step 12" in capsys.readouterr().out
