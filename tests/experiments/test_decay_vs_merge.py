"""`riverbed experiment decay-vs-merge`, bounded form: runs end to end, writes its outputs."""

from __future__ import annotations

import json

import pytest

from riverbed.cli.main import main


@pytest.mark.slow
def test_decay_vs_merge_bounded(tmp_path, monkeypatch):
    monkeypatch.setenv("RIVERBED_BOUNDED", "1")
    out = tmp_path / "dvm"
    assert main(["experiment", "decay-vs-merge", "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["quick"] and res["seeds"] == 2 and [s["fork"] for s in res["summary"]] == [20, 40]
    assert (out / "decay_vs_merge.png").stat().st_size > 10_000
    assert "emulated − decay" in (out / "results.md").read_text()
    for run in res["runs"]:
        for row in run["rows"]:
            # the emulated merge reads the main checkpoints of the decay window, weights summing to 1
            assert set(row["emulated_steps"]) <= set(row["window"]) and row["window"][-1] == row["end"]
            assert sum(row["emulated_weights"]) == pytest.approx(1.0)
            assert len({round(row[m], 6) for m in ("decay", "emulated", "sma", "ema", "wma", "main")}) == 6
    for s in res["summary"]:
        assert s["gap"]["emulated"]["n"] == 2 and abs(s["gap"]["emulated"]["mean"]) < 0.2


def test_bad_forks_exit_2(tmp_path, capsys):
    assert main(["experiment", "decay-vs-merge", "--quick", "--forks", "23", "--out", str(tmp_path / "x")]) == 2
    assert "fork 23 and its end 43 must be multiples of --ckpt-every 5" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
