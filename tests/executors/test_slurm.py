"""`--executor slurm` through submitit's local executor (``cluster=local``: no cluster needed):
submit and return (the branches queued in run.json), `riverbed ls`, then `riverbed branch --wait`."""

from __future__ import annotations

import json

import pytest

from riverbed.checkpoints import layout
from riverbed.cli.main import main
from riverbed.runs import Run
from tests.executors.conftest import break_device, need, needs_no_cuda

SLURM = ["--executor", "slurm", "--slurm-option", "cluster=local", "--no-progress"]


@pytest.mark.slow  # a submitit job process importing torch
def test_submit_then_ls_then_wait(tiny_main, capsys):
    need("submitit", "slurm")
    run = str(tiny_main.path)
    rc = main(["branch", run, "--from", "10,20", "--shape", "linear", "--length", "4 steps", *SLURM])
    out = capsys.readouterr().out
    assert rc == 0 and "queued" in out and "riverbed branch RUN --wait" in out
    names = ["linear-from10-len4", "linear-from20-len4"]
    recs = [Run.open(run).branch(n) for n in names]
    assert all(r.job.backend == "slurm" and r.job.id.isdigit() for r in recs)  # submitit local: the job's pid
    assert main(["ls", run, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["manifest"]["branches"]
    assert {listed[n]["job"]["id"] for n in names} == {r.job.id for r in recs}
    assert (tiny_main.path / layout.JOBS / "slurm").is_dir()  # submitit's job files and logs
    assert main(["branch", run, "--wait", "--no-progress"]) == 0
    assert [Run.open(run).branch(n).status for n in names] == ["finished", "finished"]
    assert "linear-from20-len4" in capsys.readouterr().out


@pytest.mark.slow
def test_a_slurm_job_that_raises_is_a_failed_branch(tiny_main, capsys):
    need("submitit", "slurm")
    needs_no_cuda()
    break_device(tiny_main.path)
    rc = main(["branch", str(tiny_main.path), "--from", "10", "--shape", "linear", "--length", "4 steps", "--wait", *SLURM])
    err = capsys.readouterr().err
    assert rc == 2 and "branch 'linear-from10-len4' (job slurm:" in err and "CUDA is not available" in err
    assert Run.open(tiny_main.path).branch("linear-from10-len4").status == "failed"


def test_bad_slurm_options_are_refused_before_anything_is_queued(tiny_main, capsys):
    need("submitit", "slurm")
    before = (tiny_main.path / layout.MANIFEST).read_bytes()
    rc = main(["branch", str(tiny_main.path), "--from", "10", "--shape", "linear", "--length", "4 steps",
               "--executor", "slurm", "--slurm-option", "cluster=mars"])
    assert rc == 2 and "--executor slurm" in capsys.readouterr().err
    rc = main(["branch", str(tiny_main.path), "--from", "10", "--shape", "linear", "--length", "4 steps",
               "--executor", "local", "--slurm-option", "x=1"])
    assert rc == 2 and "--slurm-option is for --executor slurm" in capsys.readouterr().err
    assert (tiny_main.path / layout.MANIFEST).read_bytes() == before
