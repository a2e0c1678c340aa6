"""`riverbed experiment continued-training`, bounded form: runs end to end, writes its outputs."""

from __future__ import annotations

import json

import pytest

from riverbed.cli.main import main


@pytest.mark.slow
def test_continued_training_experiment_bounded(tmp_path, monkeypatch):
    monkeypatch.setenv("RIVERBED_BOUNDED", "1")
    out = tmp_path / "ct"
    assert main(["experiment", "continued-training", "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["bounded"] and [r["arm"] for r in res["summary"]] == ["last", "pma"]
    assert (out / "continued.png").stat().st_size > 10_000
    runs = {r["arm"]: r for r in res["runs"]}
    # both continued runs start from step 0 of the new data and learn it
    for r in runs.values():
        steps = [s for s, _ in r["eval"]]
        assert steps[0] == 0 and steps[-1] == res["steps"]
        assert r["eval"][-1][1] < r["eval"][0][1]
        assert len(r["grad_norm"]) == res["steps"]
    # the two starts differ (a merge of 6 is not the last checkpoint)
    assert runs["last"]["eval"][0][1] != runs["pma"]["eval"][0][1]
