"""``riverbed.train_run``: the library behind ``riverbed train`` (create or resume a run, train main)."""

from __future__ import annotations

import dataclasses

import pytest

import riverbed
from riverbed.errors import ConfigError, RunError
from riverbed.runs import Run


def test_train_run_from_a_run_config_creates_the_run_and_resumes_it(tmp_path, tiny_run_config):
    run_dir = tmp_path / "run"
    first = riverbed.train_run(tiny_run_config, run_dir, steps=2, progress=False)
    assert first.step == 2 and first.checkpoint is not None
    assert Run.open(run_dir).branch("main").status in ("running", "stopped", "finished")
    # resume with the stored config (no config given), longer
    second = riverbed.train_run(None, run_dir, steps=4, progress=False)
    assert second.step == 4


def test_train_run_refuses_a_resume_that_changes_the_trajectory(tmp_path, tiny_run_config):
    run_dir = tmp_path / "run"
    riverbed.train_run(tiny_run_config, run_dir, steps=2, progress=False)
    changed = dataclasses.replace(tiny_run_config, optim=dataclasses.replace(tiny_run_config.optim, lr=0.01))
    with pytest.raises(RunError, match=r"optim.lr differs from the run.s"):
        riverbed.train_run(changed, run_dir, steps=4, progress=False)


def test_train_run_needs_a_config_or_a_run(tmp_path, tiny_run_config):
    with pytest.raises(ConfigError, match="give a CONFIG file or --run DIR"):
        riverbed.train_run(tiny_run_config)
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match="is a file"):
        riverbed.train_run(tiny_run_config, tmp_path / "file")
    assert (tmp_path / "file").read_text() == "x"
