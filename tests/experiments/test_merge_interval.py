"""`riverbed experiment merge-interval`: bounded form end to end; the trend; bad flags."""

from __future__ import annotations

import json
import math

import pytest

from riverbed.cli.main import main
from riverbed.experiments.merge_interval import trend


def test_trend_is_the_slope_of_log2_best_v_against_log10_params():
    rows = [{"params": 1e4, "best_V": 5}, {"params": 1e5, "best_V": 10}, {"params": 1e6, "best_V": 20}]
    assert trend(rows) == pytest.approx(1.0)
    assert trend([{**r, "best_V": 10} for r in rows]) == 0.0
    assert trend(rows[::-1]) == pytest.approx(1.0)  # order of the sizes does not matter
    assert trend([{"params": 1e4, "best_V": 20}, {"params": 1e6, "best_V": 5}]) == pytest.approx(-1.0)


def test_bad_sizes_exit_2_and_delete_nothing(tmp_path, capsys):
    assert main(["experiment", "merge-interval", "--sizes", "w32,huge", "--out", str(tmp_path / "x")]) == 2
    assert "--sizes needs at least 2 of" in capsys.readouterr().err
    assert main(["experiment", "merge-interval", "--quick", "--steps", "55", "--out", str(tmp_path / "x")]) == 2
    assert "--steps must be a multiple of 5" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_merge_interval_bounded(tmp_path, monkeypatch):
    monkeypatch.setenv("RIVERBED_BOUNDED", "1")
    out = tmp_path / "mi"
    assert main(["experiment", "merge-interval", "--out", str(out), "--steps", "100", "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["bounded"] and res["seeds"] == 1 and [s["size"] for s in res["summary"]] == ["w32", "w64", "w128"]
    params = [s["params"] for s in res["summary"]]
    assert params == sorted(params) and params[-1] > 10 * params[0]
    for r in res["runs"]:
        assert str(r["best_V"]) == min(r["loss_by_V"], key=r["loss_by_V"].get) and len(r["loss_by_V"]) == 3
    assert math.isfinite(res["trend"]["mean"]) and res["trend_per_seed"] == [trend([r for r in res["runs"]])]
    assert (out / "merge_interval.png").stat().st_size > 10_000 and "best V" in (out / "results.md").read_text()
