"""check_schedule: continuity, min reached, decay share, LR at checkpoints."""

from __future__ import annotations

import pytest

from riverbed.errors import ConfigError
from riverbed.schedules import WSD, WSDS, WarmupStable, check_schedule
from riverbed.schedules import check as check_mod


def test_wsd_report():
    r = check_schedule(WSD(10, 70, 20, shape="linear", min_ratio=0.1), checkpoints=[10, 80, 90, 100])
    assert r.total_steps == 100 and r.full_scan
    assert r.first == pytest.approx(0.1) and r.last == pytest.approx(0.1)
    assert r.min_reached is True and r.target_min == 0.1
    assert (r.decay_steps, r.decay_fraction) == (20, 0.2)
    assert r.jumps == ()  # warmup of 10 steps moves 0.1 per step: not a jump
    assert r.max_change == pytest.approx(0.1)
    # checkpoint c = after c updates; its LR is that of update c - 1.
    assert [c for c, _ in r.checkpoints] == [10, 80, 90, 100]
    assert [m for _, m in r.checkpoints] == pytest.approx([1.0, 1.0, 0.1 + 0.9 * 0.5, 0.1])


def test_wsds_restarts_are_jumps():
    r = check_schedule(WSDS(budgets=(10, 20), warmup=0, decays=(2, 2), shape="linear"), checkpoints=[10, 20])
    assert [(j.step, j.before, j.after) for j in r.jumps] == [(8, 1.0, 0.5), (9, 0.5, 0.0), (10, 0.0, 1.0), (18, 1.0, 0.5), (19, 0.5, 0.0)]
    assert [m for _, m in r.checkpoints] == [0.0, 0.0]
    assert r.decay_fraction == 0.2


def test_indefinite_schedule():
    r = check_schedule(WarmupStable(warmup=5), checkpoints=[100])
    assert r.total_steps is None and r.last is None and r.min_reached is None
    assert r.checkpoints == ((100, 1.0),)


def test_long_schedule_is_checked_around_boundaries(monkeypatch):
    monkeypatch.setattr(check_mod, "FULL_SCAN_STEPS", 1000)
    r = check_schedule(WSDS(budgets=(50_000, 100_000), warmup=100, decays=(1000, 1000), shape="linear"))
    assert not r.full_scan
    assert [j.step for j in r.jumps] == [50_000]  # the restart is found despite sampling
    assert r.min_reached is True


def test_bad_checkpoint():
    with pytest.raises(ConfigError, match="checkpoints"):
        check_schedule(WSD(1, 1, 1), checkpoints=[0])
