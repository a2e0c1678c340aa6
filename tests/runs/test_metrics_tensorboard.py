"""TensorBoard: one log dir per branch when installed; said once (not silently skipped) when missing."""

import sys

import pytest

from riverbed.runs import metrics
from riverbed.runs.metrics import TENSORBOARD_MISSING, MetricsLogger


def test_missing_tensorboard_is_said_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # makes the import raise ImportError
    monkeypatch.setattr(metrics, "_told", set())
    for branch in ("main", "decay-a", "decay-b"):
        with MetricsLogger(tmp_path / branch / "metrics.jsonl", tensorboard=True) as log:
            log.log({"kind": "train", "step": 1, "loss": 1.0})
    err = capsys.readouterr().err
    assert err.count(TENSORBOARD_MISSING) == 1 and "riverbed[tensorboard]" in err
    with MetricsLogger(tmp_path / "quiet" / "metrics.jsonl", tensorboard=False):
        pass
    assert capsys.readouterr().err == ""
    assert metrics.read_metrics(tmp_path / "main" / "metrics.jsonl")[0]["loss"] == 1.0  # JSONL still written


def test_each_branch_is_its_own_tensorboard_run(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard not installed (pip install 'riverbed[tensorboard]')")
    for branch in ("main", "decay"):
        with MetricsLogger(tmp_path / "branches" / branch / "metrics.jsonl", tensorboard=True) as log:
            log.log({"kind": "train", "step": 1, "loss": 1.0, "lr": 0.1})
            log.log({"kind": "eval", "step": 1, "eval_loss": 2.0})
    for branch in ("main", "decay"):
        assert list((tmp_path / "branches" / branch / "tensorboard").glob("events.out.tfevents.*"))


def test_forecast_rows_reach_tensorboard(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard not installed (pip install 'riverbed[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with MetricsLogger(tmp_path / "main" / "metrics.jsonl", tensorboard=True) as log:
        log.log({"kind": "forecast", "step": 40, "forecast_loss": 2.5, "forecast_lo": 2.4, "forecast_hi": 2.6,
                 "forecast_law": "valley"})
    acc = EventAccumulator(str(tmp_path / "main" / "tensorboard"))
    acc.Reload()
    assert {"forecast/forecast_loss", "forecast/forecast_lo", "forecast/forecast_hi"} <= set(acc.Tags()["scalars"])
    assert acc.Scalars("forecast/forecast_loss")[0].value == pytest.approx(2.5)
