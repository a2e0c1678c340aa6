"""Grid cells as jobs: `riverbed claims` seeds on the local executor (the same numbers as in one
process), a cell that fails, and the experiment grids' executor flags."""

from __future__ import annotations

import pytest

from riverbed.cli.main import main
from riverbed.executors import ExecutorConfig
from riverbed.executors.base import JobError, Task
from riverbed.executors.cells import run_cells

@pytest.mark.slow  # two seeds of a (tiny) claims study, in one process and as jobs
def test_claims_seeds_as_jobs_measure_what_one_process_measures(tmp_path):
    from riverbed.claims.runner import run_claims

    one, _ = run_claims("tiny", 2, only=["wsd"], workdir=tmp_path)
    jobs, _ = run_claims("tiny", 2, only=["wsd"], workdir=tmp_path, executor=ExecutorConfig("local", jobs=2))
    assert [r.values for r in jobs] == [r.values for r in one]
    assert [r.verdict for r in jobs] == [r.verdict for r in one]


def test_a_cell_that_fails_is_named_with_its_job(tmp_path):
    tasks = [Task("riverbed.claims.runner:claims_job", {"job": {"seed": 0, "size": "tiny"}, "workdir": str(tmp_path)}, "seed 0")]  # no "study": the job raises
    with pytest.raises(JobError, match=r"1 of 1 job\(s\) did not finish: seed 0 \(job local:\S+\) failed: TypeError"):
        run_cells(ExecutorConfig("local", jobs=1), tasks, folder=tmp_path / "jobs", progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["jobs"] or not any(tmp_path.iterdir())


@pytest.mark.parametrize("verb", [["claims", "--quick"], ["experiment", "scaling"]])
def test_grid_executor_flags_are_checked_before_anything_runs(verb, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    extra = ["--out", str(tmp_path / "out")] if verb[0] == "experiment" else []
    assert main([*verb, *extra, "--jobs", "0"]) == 2
    assert "--jobs 0: expected a whole number >= 1" in capsys.readouterr().err
    assert main([*verb, *extra, "--gpus-per-job", "1"]) == 2
    assert "--gpus-per-job need --executor" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
