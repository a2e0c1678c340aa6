import json

import pytest

from riverbed.checkpoints import layout
from riverbed.cli.main import main
from riverbed.runs import Run
from runs.conftest import tiny_config


@pytest.fixture(scope="module")
def _trained_master(tmp_path_factory):
    from riverbed.orchestration.drive import train_main

    cfg = tiny_config(ckpt_every=5, eval_every=5)
    run = Run.create(tmp_path_factory.mktemp("cli") / "run", cfg)
    train_main(cfg, run.path, run, until_step=10, progress=False)
    return Run.open(run.path).path  # opening reconciles run.json with the checkpoints once


@pytest.fixture
def trained(tmp_path, _trained_master):
    import shutil

    shutil.copytree(_trained_master, tmp_path / "run")
    return tmp_path / "run"


def test_branch_forks_several_and_ls_shows_them(trained, capsys):
    rc = main(["branch", str(trained), "--from", "5,10", "--shape", "linear", "--length", "3", "--min-ratio", "0.1",
               "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "linear-from5-len3" in out and "linear-from10-len3" in out and "finished" in out
    m = json.loads((trained / "run.json").read_text())
    assert m["branches"]["linear-from10-len3"]["final"]["step"] == 13
    assert m["branches"]["linear-from10-len3"]["schedule"]["min_ratio"] == 0.1
    assert main(["ls", str(trained), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [p["tokens"] for p in data["finished_points"]] == [8 * 128, 13 * 128]


@pytest.mark.parametrize("argv, message", [
    (["--from", "7", "--shape", "linear", "--length", "3"], r"no checkpoint at step 7 \(saved steps: 5, 10\)"),
    (["--from", "5", "--shape", "zigzag", "--length", "3"], "unknown decay shape 'zigzag'"),
    (["--from", "5", "--shape", "linear", "--length", "-3"], "--length='-3': the decay length must be positive"),
    (["--from", "5", "--shape", "linear", "--length", "100%"], "impossible"),
    (["--from", "x", "--shape", "linear", "--length", "3"], "'x' is not a step number"),
    (["--from", "5", "--shape", "linear"], "needs --length"),
    (["--plan", "nope.json", "--from", "5"], "drop --from"),
])
def test_branch_bad_input_exits_2_and_writes_nothing(trained, capsys, argv, message):
    before = (trained / "run.json").read_text()
    assert main(["branch", str(trained), *argv, "--no-progress"]) == 2
    import re

    assert re.search(message, capsys.readouterr().err)
    assert (trained / "run.json").read_text() == before
    assert [p.name for p in (trained / layout.BRANCHES).iterdir()] == ["main"]


def test_branch_existing_name_exits_2(trained, capsys):
    assert main(["branch", str(trained), "--from", "5", "--shape", "linear", "--length", "2", "--name", "b", "--no-progress"]) == 0
    assert main(["branch", str(trained), "--from", "10", "--shape", "linear", "--length", "2", "--name", "b", "--no-progress"]) == 2
    assert "branch named 'b' already exists" in capsys.readouterr().err


def test_branch_not_a_run(tmp_path, capsys):
    assert main(["branch", str(tmp_path), "--from", "5", "--shape", "linear", "--length", "2"]) == 2
    assert "not a riverbed run" in capsys.readouterr().err


def test_train_and_branch_from_a_plan(tmp_path, capsys):
    from riverbed.schedules.budget_plan import plan_budgets

    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(tiny_config().to_toml())
    plan = tmp_path / "plan.json"
    plan_budgets([8, 16], decay=0.25, warmup=4, shape="linear").save(str(plan))
    run_dir = tmp_path / "run"
    assert main(["train", str(cfg_path), "--run", str(run_dir), "--plan", str(plan), "--no-progress"]) == 0
    # main stopped at the last fork point (12) with a checkpoint at every fork point (6, 12)
    assert [c.step for c in Run.open(run_dir).checkpoints()] == [6, 10, 12]
    assert main(["branch", str(run_dir), "--plan", str(plan), "--no-progress"]) == 0
    pts = Run.open(run_dir).finished_points()
    assert [(p.branch, p.tokens) for p in pts] == [("linear-from6-len2", 8 * 128), ("linear-from12-len4", 16 * 128)]
    # re-running the plan keeps the finished branches
    assert main(["branch", str(run_dir), "--plan", str(plan), "--no-progress"]) == 0
    capsys.readouterr()
    bad = tmp_path / "bad.json"
    plan_budgets([8, 16], decay=0.25, warmup=2, shape="linear").save(str(bad))
    assert main(["branch", str(run_dir), "--plan", str(bad), "--no-progress"]) == 2
    assert "warmup=2 but the run's main schedule has warmup=4" in capsys.readouterr().err


@pytest.mark.parametrize("length, message", [
    ("2M", r"--length='2M' is ambiguous \(steps or tokens\?\): give a unit: '2M tok', '2000 steps' or '20%'"),
    ("1e3", "ambiguous"),
    ("1e400", "1e400 is too large"),
    ("1e400 tok", "too large"),
    ("3 parsecs", "unexpected 'parsecs'"),
])
def test_branch_length_needs_a_unit_and_a_finite_value(trained, capsys, length, message):
    import re

    before = (trained / "run.json").read_text()
    assert main(["branch", str(trained), "--from", "5", "--shape", "linear", "--length", length, "--no-progress"]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert (trained / "run.json").read_text() == before


def test_branch_length_units_and_long_decay_warning(trained, capsys):
    # "3 steps" and "384 tok" (3 x 128 tokens per step) are the same branch length
    assert main(["branch", str(trained), "--from", "10", "--shape", "linear", "--length", "3 steps", "--no-progress"]) == 0
    assert "linear-from10-len3" in capsys.readouterr().out
    assert main(["branch", str(trained), "--from", "5", "--shape", "linear", "--length", "384 tok", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "linear-from5-len3" in captured.out and "warning" not in captured.err
    # a decay longer than the main branch before its fork trains, with a warning
    assert main(["branch", str(trained), "--from", "5", "--shape", "linear", "--length", "6", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "riverbed: warning: branch from step 5: the decay (6 steps, --length 6) is longer than the main branch" in err
    assert Run.open(trained).branch("linear-from5-len6").status == "finished"


def test_length_and_its_unit_may_come_as_two_words():
    # `--length 2M tok` unquoted: the shell passes two words, which are one length
    from riverbed.cli.main import build_parser

    args = build_parser().parse_args(["branch", "runs/x", "--from", "8", "--shape", "linear", "--length", "2M", "tok"])
    assert args.length == "2M tok"
    args = build_parser().parse_args(["branch", "runs/x", "--length", "20%", "--from", "8"])
    assert (args.length, args.from_steps) == ("20%", "8")
