"""``riverbed.merge`` selects a run's checkpoints itself (``run=, last=, every=``), as ``riverbed merge --run`` does."""

from __future__ import annotations

import pytest

import riverbed
from riverbed.checkpoints import layout
from riverbed.errors import MergeError

from .helpers import random_state, write_dir


def _run(root, steps):
    for s in steps:
        write_dir(layout.checkpoint_dir(root, "main", s), random_state(s % 5), state={"step": s, "tokens": s * 64})
    return root


def test_merge_of_a_runs_last_checkpoints_records_the_selection(tmp_path, capsys):
    run = _run(tmp_path / "run", [100, 200, 300, 400])
    result = riverbed.merge(tmp_path / "out", run=run, last=3, every=100, method="wma", progress=False)
    assert result.recipe["inputs"] == [str(layout.checkpoint_dir(run, "main", s)) for s in (200, 300, 400)]
    assert result.recipe["selection"] == {"run": str(run), "last": 3, "every": 100, "unit": "steps", "branch": "main"}
    assert result.weights == pytest.approx((1 / 6, 2 / 6, 3 / 6))  # wma by position, as the CLI without --wma-by
    assert "selected 3 checkpoints of" in capsys.readouterr().out


def test_merge_refuses_inputs_and_a_run_together_or_a_run_without_spacing(tmp_path):
    run = _run(tmp_path / "run", [100, 200])
    with pytest.raises(MergeError, match="give either input checkpoints or --run, not both"):
        riverbed.merge(tmp_path / "out", [layout.checkpoint_dir(run, "main", 100)], run=run, last=2, every=100)
    with pytest.raises(MergeError, match="--run needs --last N and --every V"):
        riverbed.merge(tmp_path / "out", run=run, last=2)
    assert not (tmp_path / "out").exists()
