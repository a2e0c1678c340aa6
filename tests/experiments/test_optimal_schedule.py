"""optimal-schedule: t-intervals, the summary's orderings and gaps, the per-seed work at the tiny size, the CLI."""

from __future__ import annotations

import json

import pytest
from scipy import stats

from riverbed.experiments.optimal_schedule import SCHEDULES, summarize, t_interval


def test_t_interval_is_the_students_t_interval():
    xs = [3.1, 3.3, 3.2, 3.0]
    m = t_interval(xs)
    lo, hi = stats.t.interval(0.95, len(xs) - 1, loc=sum(xs) / 4, scale=stats.sem(xs))
    assert (m["lo"], m["hi"]) == pytest.approx((lo, hi)) and m["n"] == 4
    assert t_interval([1.0])["lo"] is None


def test_summary_orders_and_pairs_by_seed():
    def res(seed, meas):
        return {"predicted": {s: {"value": 3.0 + 0.01 * i} for i, s in enumerate(SCHEDULES)},
                "measured": dict(zip(SCHEDULES, meas)), "seed": seed}

    results = [res(0, [3.00, 3.02, 3.01, 2.99]), res(1, [3.10, 3.12, 3.11, 3.09]), res(2, [3.05, 3.07, 3.06, 3.04])]
    s = summarize(results)
    assert s["predicted_order"] == list(SCHEDULES)
    assert s["measured_order"] == ["cosine", "optimized", "wsd-linear", "wsd-1-sqrt"]
    # The seeds shift every schedule alike: the paired gap has no spread, the unpaired losses do.
    assert s["gap_measured"]["wsd-1-sqrt"]["mean"] == pytest.approx(0.02)
    assert s["gap_measured"]["wsd-1-sqrt"]["hi"] - s["gap_measured"]["wsd-1-sqrt"]["lo"] == pytest.approx(0, abs=1e-9)
    assert s["measured"]["optimized"]["hi"] - s["measured"]["optimized"]["lo"] > 0.1


@pytest.mark.slow
def test_bounded_experiment_runs_from_the_cli(tmp_path, capsys):
    from riverbed.cli.main import main

    out = tmp_path / "exp"
    assert main(["experiment", "optimal-schedule", "--quick", "--seeds", "2", "--out", str(out), "--no-progress"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["seeds"] == 2 and len(doc["runs"]) == 2 and (out / "optimal_schedule.png").stat().st_size > 0
    for r in doc["runs"]:
        assert set(r["measured"]) == set(SCHEDULES) == set(r["predicted"])
        # Under the law the optimum is at least as good as every baseline it was searched against.
        assert all(r["predicted"]["optimized"]["value"] <= r["predicted"][s]["value"] + 1e-12 for s in SCHEDULES)
        lr = r["optimized_lr"]
        warm = doc["geometry"]["warmup"]
        assert all(b <= a + 1e-15 for a, b in zip(lr[warm:], lr[warm + 1:]))
    assert "Measured ordering" in capsys.readouterr().out
