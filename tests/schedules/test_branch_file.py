"""The {schedule} file of a command branch: round trip, the LR of each update, bad files named."""

from __future__ import annotations

import json

import pytest

from riverbed.errors import ConfigError
from riverbed.schedules import DecayBranch, WarmupStable, schedule_to_spec
from riverbed.schedules.branch_file import BranchSchedule, read_branch_schedule


def test_round_trip_and_lr_of_each_update(tmp_path):
    spec = schedule_to_spec(DecayBranch(WarmupStable(10), 100, 20, "linear"))
    b = BranchSchedule(3e-4, spec, 100, 120)
    p = tmp_path / "schedule.json"
    p.write_text(b.to_json())
    got = read_branch_schedule(p)
    assert got == b and got.steps == 20
    assert got.lr_at(5) == pytest.approx(3e-4 * 6 / 10) and got.lr_at(99) == pytest.approx(3e-4)
    assert got.lr_at(119) == 0.0 and json.loads(p.read_text())["end_step"] == 120


@pytest.mark.parametrize("text,match", [
    ("not json", "not a branch schedule file"),
    ('{"lr": 1e-3, "schedule": {"type": "constant"}, "start_step": 5}', "start_step"),
    ('{"lr": -1, "schedule": {"type": "constant"}, "start_step": 0, "end_step": 5}', "lr: must be a positive number"),
    ('{"lr": 1, "schedule": {"type": "nope"}, "start_step": 0, "end_step": 5}', "unknown schedule type"),
    ('{"lr": 1, "schedule": {"type": "constant"}, "start_step": 5, "end_step": 5}', "need 0 <= start_step < end_step"),
])
def test_bad_files_are_named(tmp_path, text, match):
    p = tmp_path / "s.json"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match) as exc:
        read_branch_schedule(p)
    assert "s.json" in str(exc.value)
