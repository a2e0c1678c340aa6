"""``init_from_merge``: the library behind ``riverbed init-from-merge`` (a new run from a merge)."""

from __future__ import annotations

import pytest

import riverbed
from riverbed.checkpoints import layout
from riverbed.errors import RunError
from riverbed.orchestration.init_from_merge import init_from_merge
from riverbed.runs import Run


def test_a_new_run_starts_from_the_merge_of_the_last_checkpoints(tmp_path, tiny_run_config):
    source = tmp_path / "base"
    riverbed.train_run(tiny_run_config, source, steps=4, progress=False)  # checkpoints at 2 and 4
    made = init_from_merge(tmp_path / "ft", source, last=2)
    assert made.checkpoints == (2, 4) and made.weights == pytest.approx((0.5, 0.5)) and made.method == "sma"
    assert (layout.init_merge_dir(tmp_path / "ft") / layout.STATE_FILE).is_file()
    assert made.config.init is not None and made.config.init.from_merge == str(source)
    assert Run.open(tmp_path / "ft").branch("main").status == "stopped"
    result = riverbed.train_run(None, tmp_path / "ft", steps=6, progress=False)  # trains from the merge
    assert result.step == 6


def test_a_source_that_is_not_a_run_is_refused_and_nothing_is_made(tmp_path):
    (tmp_path / "not-a-run").mkdir()
    with pytest.raises(RunError, match="not a riverbed run"):
        init_from_merge(tmp_path / "ft", tmp_path / "not-a-run", last=2)
    assert not (tmp_path / "ft").exists()
