"""Command branches (`riverbed branch --command`) as executor jobs: the job runs the user's command
and ingests what it wrote; Slurm through submitit's local executor (no cluster needed)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from riverbed.cli.main import main
from riverbed.runs import Run
from tests.executors.conftest import need

RECIPES = Path(__file__).parents[1] / "orchestration" / "recipes"
TINY = Path(__file__).parents[1] / "integrations"


@pytest.fixture
def command(monkeypatch):
    src = str(Path(__file__).parents[2] / "src")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TINY), src]))
    return f"{sys.executable} {RECIPES / 'plain_decay.py'} {{fork}} {{schedule}} {{out}}"


@pytest.mark.slow  # a submitit job process running a torch script
def test_a_slurm_command_branch_submits_waits_and_is_recorded(tiny_main, command, capsys):
    need("submitit", "slurm")
    rc = main(["branch", str(tiny_main.path), "--from", "20", "--shape", "linear", "--length", "8", "--command", command,
               "--executor", "slurm", "--slurm-option", "cluster=local", "--wait", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    b = Run.open(tiny_main.path).branch("linear-from20-len8")
    assert b.status == "finished" and b.job.backend == "slurm" and b.final.step == 28 and b.final.eval_loss is not None


@pytest.mark.slow
def test_a_failing_command_job_is_a_failed_branch_naming_its_job(tiny_main, capsys):
    rc = main(["branch", str(tiny_main.path), "--from", "20", "--shape", "linear", "--length", "8", "--name", "bad",
               "--command", f"{sys.executable} {RECIPES / 'failing.py'} {{fork}} {{schedule}} {{out}}",
               "--executor", "local", "--jobs", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "branch 'bad' (job local:" in err and "exited with code 3" in err
    assert Run.open(tiny_main.path).branch("bad").status == "failed"
