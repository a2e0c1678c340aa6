"""`riverbed experiment spike`, bounded form (RIVERBED_BOUNDED=1): runs end to end, writes its outputs."""

from __future__ import annotations

import json

import pytest

from riverbed.cli.main import main


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
