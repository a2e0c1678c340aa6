"""`riverbed experiment spike`, bounded form (RIVERBED_BOUNDED=1): runs end to end, writes its outputs."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest

from riverbed.cli.main import main
from riverbed.experiments.spike import Curve, compare_to_reference, run_config, schedule_spec, smooth, summarize, table
from riverbed.schedules import schedule_from_spec


@pytest.mark.slow
def test_spike_experiment_bounded(tmp_path, monkeypatch):
    monkeypatch.setenv("RIVERBED_BOUNDED", "1")
    out = tmp_path / "spike"
    assert main(["experiment", "spike", "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["bounded"] and res["cause"] == "blip"
    assert [r["arm"] for r in res["summary"]] == ["reference", "none", "rollback", "pma-init"]
    assert (out / "spike.png").stat().st_size > 10_000
    assert "| pma-init |" in (out / "results.md").read_text()
    runs = {r["arm"]: r for r in res["runs"]}
    assert runs["reference"]["gap"] == 0.0 and runs["reference"]["recoveries"] == 0
    for r in runs.values():  # "back on the trajectory" = passed and within tol of the reference at the end
        assert r["returned"] == (r["passed"] and r["gap"] <= res["tol"])
    for arm, r in runs.items():
        # a run either reached the last step or was stopped by max_recoveries with a message
        assert r["passed"] == (r["stopped"] is None and len(r["curve"]) == res["steps"])
        assert r["steps_executed"] >= len(r["curve"])
        if arm not in ("none", "reference"):
            assert sum(e["event"] == "recovery" for e in r["events"]) == r["recoveries"] <= 4
            onset = None
            for e in r["events"]:  # merged / restored checkpoints predate the spike they recover from
                if e["event"] == "spike":
                    onset = e["onset"]
                elif e["event"] == "recovery":
                    assert e["checkpoints"] and max(e["checkpoints"]) < onset


# The spike experiment's bookkeeping: the surviving trajectory, smoothing, the summary table.
def test_curve_keeps_the_trajectory_that_survived_a_rewind():
    c = Curve()
    for step, loss in [(1, 3.0), (2, 2.9), (3, 9.0), (4, 9.5), (3, 2.8), (4, 2.7)]:  # rewound to step 2
        c.on_step_end(SimpleNamespace(step=step, train_loss=loss, grad_norm=1.0))
    assert c.series() == ([0, 1, 2, 3], [3.0, 2.9, 2.8, 2.7]) and c.executed == 6


def test_smooth_is_a_trailing_mean():
    assert smooth([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert smooth([1.0, math.nan, 1.0], 2)[1:] == [math.inf, math.inf]


def test_blip_schedule_is_healthy_again_after_the_blip():
    sched = schedule_from_spec(schedule_spec(0.3, 0.03, jump=155, cause="blip", blip_len=3))
    m = [sched.multiplier(s) for s in (9, 154, 155, 157, 158, 299)]
    assert m[0] < 1 and m[1] == 1.0 and [round(x, 9) for x in m[2:4]] == [10.0, 10.0] and m[4:] == [1.0, 1.0]
    jump = schedule_from_spec(schedule_spec(0.3, 0.03, jump=155, cause="jump"))
    assert round(jump.multiplier(299), 9) == 10.0
    ref = schedule_from_spec(schedule_spec(0.3, 0.03, jump=155, arm="reference"))
    assert ref.multiplier(156) == 1.0


def test_guarded_blip_arms_scale_the_lr_over_the_replayed_blip():
    g = run_config(0, 300, 0.3, "pma-init", 0.03, 155, "blip", 3).guard
    assert g.action == "pma-init" and g.pma_count == 3 and round(g.lr_scale, 9) == 0.1 and g.lr_scale_steps == 13 and g.patience == 2
    jump = run_config(0, 300, 0.3, "rollback", 0.03, 155, "jump").guard
    assert jump.lr_scale == 1.0 and jump.patience == 3
    assert run_config(0, 300, 0.3, "reference").guard is None and run_config(0, 300, 0.3, "none").guard is None


def test_compare_to_reference_gap_and_return_step():
    ref = [3.0] * 10
    runs = [{"arm": "reference", "seed": 0, "curve": ref, "passed": True, "spike_step": None},
            {"arm": "none", "seed": 0, "curve": [3.0] * 4 + [5.0] + [3.0] * 5, "passed": True,
             "spike_step": 4},
            {"arm": "rollback", "seed": 0, "curve": [3.0] * 6, "passed": False, "spike_step": 4}]
    compare_to_reference(runs, tol=0.23)
    none, stopped = runs[1], runs[2]
    # smooth(w=20) is a running mean here: 3.25, 3.222, 3.2 at steps 7, 8, 9 against 3.0
    assert abs(none["gap"] - 0.2) < 1e-9 and none["returned"] and none["back_at"] == 8
    assert stopped["gap"] == 0.0 and not stopped["returned"] and stopped["back_at"] is None
    assert runs[0]["gap"] == 0.0 and runs[0]["back_at"] == 0


def test_summary_mean_and_spread():
    runs = [{"arm": arm, "seed": s, "spike_step": 100 + s, "passed": arm != "rollback",
             "returned": arm == "pma-init", "recoveries": 0 if arm == "none" else 1 + s,
             "final_loss": 2.0 + s / 10, "pre_spike_loss": 2.5} for arm in ("none", "rollback", "pma-init")
            for s in range(3)]
    rows = summarize(runs)
    assert rows[0]["arm"] == "reference" and rows[0]["runs"] == 0
    pma = rows[3]
    assert pma["arm"] == "pma-init" and pma["passed"] == 3 and pma["returned"] == 3
    assert pma["final_loss"]["mean"] == 2.1 and pma["final_loss"]["min"] == 2.0
    assert pma["recoveries"] == {"mean": 2.0, "min": 1, "max": 3, "std": 1.0}
    md = table(rows)
    assert "| rollback | 3 | 3 | 101 [100, 102] | 0/3 | 0/3 |" in md
