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
    assert res["bounded"] and [r["arm"] for r in res["summary"]] == ["none", "rollback", "pma-init"]
    assert (out / "spike.png").stat().st_size > 10_000
    assert "| pma-init |" in (out / "results.md").read_text()
    runs = {r["arm"]: r for r in res["runs"]}
    # the control spikes (that is what the LR was chosen for) and the guarded arms saw it too
    assert runs["none"]["spike_step"] is not None
    assert runs["pma-init"]["recoveries"] >= 1 and runs["rollback"]["recoveries"] >= 1
