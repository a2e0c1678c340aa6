"""The spike experiment's bookkeeping: the surviving trajectory, smoothing, the summary table."""

from __future__ import annotations

import math
from types import SimpleNamespace

from riverbed.experiments.spike import Curve, smooth, summarize, table


def test_curve_keeps_the_trajectory_that_survived_a_rewind():
    c = Curve()
    for step, loss in [(1, 3.0), (2, 2.9), (3, 9.0), (4, 9.5), (3, 2.8), (4, 2.7)]:  # rewound to step 2
        c.on_step_end(SimpleNamespace(step=step, train_loss=loss, grad_norm=1.0))
    assert c.series() == ([0, 1, 2, 3], [3.0, 2.9, 2.8, 2.7]) and c.executed == 6


def test_smooth_is_a_trailing_mean():
    assert smooth([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert smooth([1.0, math.nan, 1.0], 2)[1:] == [math.inf, math.inf]


def test_summary_mean_and_spread():
    runs = [{"arm": arm, "seed": s, "spike_step": 100 + s, "passed": arm != "rollback",
             "returned": arm == "pma-init", "recoveries": 0 if arm == "none" else 1 + s,
             "final_loss": 2.0 + s / 10, "pre_spike_loss": 2.5} for arm in ("none", "rollback", "pma-init")
            for s in range(3)]
    rows = summarize(runs)
    pma = rows[2]
    assert pma["arm"] == "pma-init" and pma["passed"] == 3 and pma["returned"] == 3
    assert pma["final_loss"]["mean"] == 2.1 and pma["final_loss"]["min"] == 2.0
    assert pma["recoveries"] == {"mean": 2.0, "min": 1, "max": 3, "std": 1.0}
    md = table(rows)
    assert "| rollback | 3 | 3 | 101 [100, 102] | 0/3 | 0/3 |" in md
