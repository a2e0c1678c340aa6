"""metrics.jsonl: append-only rows, resume truncation, torn lines, non-finite values."""

from __future__ import annotations

import json
import math

import pytest

from riverbed.runs.metrics import MetricsLogger, read_metrics


def test_rows_and_resume_truncation(tmp_path):
    path = tmp_path / "b" / "metrics.jsonl"
    with MetricsLogger(path) as log:
        for s in range(1, 6):
            log.log({"kind": "train", "step": s, "loss": 1.0 / s})
    with open(path, "a") as fh:
        fh.write('{"kind": "train", "step": 6, "lo')  # a crash mid-line
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3, 4, 5]
    # Resuming from the checkpoint at step 3 drops what came after it, and the torn line.
    with MetricsLogger(path, resume_step=3) as log:
        log.log({"kind": "train", "step": 4, "loss": 0.5})
    rows = read_metrics(path)
    assert [(r["step"], r["loss"]) for r in rows] == [(1, 1.0), (2, 0.5), (3, 1 / 3), (4, 0.5)]
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_non_finite_values_stay_parseable(tmp_path):
    path = tmp_path / "m.jsonl"
    with MetricsLogger(path) as log:
        log.log({"kind": "train", "step": 1, "loss": math.nan, "grad_norm": math.inf})
    row = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"bare {c} in metrics.jsonl"))
    assert row["loss"] is None and row["loss_nonfinite"] == "nan"
    assert row["grad_norm"] is None and row["grad_norm_nonfinite"] == "inf"


def test_disabled_logger_writes_nothing(tmp_path):
    path = tmp_path / "m.jsonl"
    with MetricsLogger(path, enabled=False) as log:
        log.log({"kind": "train", "step": 1})
    assert not path.exists() and read_metrics(path) == []
