"""Decay branches are evaluated often enough to draw their drop (about ten times by default)."""

import pytest

from riverbed.checkpoints import layout
from riverbed.cli.main import main
from riverbed.errors import RunError
from riverbed.runs.fork import branch_eval_every, plan_requests, run_requests
from riverbed.training.metrics import read_metrics


def _evals(run, name):
    return [r["step"] for r in read_metrics(layout.metrics_path(run.path, name)) if r.get("kind") == "eval"]


def test_branch_eval_every_values():
    assert [branch_eval_every(n, 0) for n in (1, 9, 10, 25, 200)] == [1, 1, 1, 2, 20]
    assert branch_eval_every(25, 7) == 7
    with pytest.raises(RunError, match="--eval-every -1"):
        branch_eval_every(10, -1)


def test_cli_default_gives_ten_evaluations(tiny_main, capsys):
    # the run's eval_every is 10: a 12-step branch would get one evaluation at its end
    assert main(["branch", str(tiny_main.path), "--from", "20", "--decay", "linear", "--length", "12", "--no-progress"]) == 0
    assert _evals(tiny_main, "linear-from20-len12") == list(range(21, 33))
    assert main(["branch", str(tiny_main.path), "--from", "10", "--decay", "linear", "--length", "6",
                 "--eval-every", "3", "--no-progress"]) == 0
    assert _evals(tiny_main, "linear-from10-len6") == [12, 15, 16]


def test_api_keeps_the_config_cadence_unless_asked(tiny_main):
    run_requests(tiny_main, plan_requests(tiny_main, [20], "linear", 12), progress=False)
    assert _evals(tiny_main, "linear-from20-len12") == [30, 32]
    with pytest.raises(RunError, match="--eval-every"):
        run_requests(tiny_main, plan_requests(tiny_main, [10], "linear", 5, name="x"), progress=False, eval_every=-2)
    assert "x" not in tiny_main.manifest.branches
