"""`riverbed train`: create, resume, refuse a changed run, plan, bad input -> exit 2."""

from __future__ import annotations

import json

from riverbed.checkpoints import layout
from riverbed.cli.main import main
from riverbed.training import read_metrics


def _config(tmp_path, text):
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return path


def test_train_creates_and_resumes_a_run(tiny_toml, tmp_path, capsys):
    cfg, run = _config(tmp_path, tiny_toml), tmp_path / "run"
    assert main(["train", str(cfg), "--run", str(run), "--no-progress", "--set", "train.max_steps=2"]) == 0
    assert "main: step 2" in capsys.readouterr().out
    assert (run / layout.CONFIG).is_file() and (run / layout.MANIFEST).is_file()
    assert [r.step for r in layout.list_checkpoints(run, "main")] == [2]
    # Resume without the config file, longer: only the length changes.
    assert main(["train", "--run", str(run), "--no-progress", "--set", "train.max_steps=4"]) == 0
    assert [r.step for r in layout.list_checkpoints(run, "main")] == [2, 4]
    assert "max_steps = 4" in (run / layout.CONFIG).read_text()
    steps = [r["step"] for r in read_metrics(layout.metrics_path(run, "main")) if r["kind"] == "train"]
    assert steps == [1, 2, 3, 4]
    manifest = json.loads((run / layout.MANIFEST).read_text())
    assert "main" in json.dumps(manifest)


def test_resume_with_changed_trajectory_is_refused(tiny_toml, tmp_path, capsys):
    cfg, run = _config(tmp_path, tiny_toml), tmp_path / "run"
    assert main(["train", str(cfg), "--run", str(run), "--no-progress", "--set", "train.max_steps=1"]) == 0
    capsys.readouterr()
    rc = main(["train", str(cfg), "--run", str(run), "--no-progress", "--set", "train.batch_size=8"])
    err = capsys.readouterr().err
    assert rc == 2 and "train.batch_size differs" in err and "4 -> 8" in err
    assert [r.step for r in layout.list_checkpoints(run, "main")] == [1]


def test_resume_without_config_file_refuses_a_changed_trajectory_too(tiny_toml, tmp_path, capsys):
    cfg, run = _config(tmp_path, tiny_toml), tmp_path / "run"
    assert main(["train", str(cfg), "--run", str(run), "--no-progress", "--set", "train.max_steps=1"]) == 0
    stored = (run / layout.CONFIG).read_text()
    capsys.readouterr()
    rc = main(["train", "--run", str(run), "--no-progress", "--set", "optim.lr=0.001", "--set", "train.max_steps=2"])
    err = capsys.readouterr().err
    assert rc == 2 and "optim.lr differs" in err
    assert (run / layout.CONFIG).read_text() == stored  # nothing the user had is changed
    assert [r.step for r in layout.list_checkpoints(run, "main")] == [1]
    # a length change is allowed and resumes
    assert main(["train", "--run", str(run), "--no-progress", "--set", "train.max_steps=2"]) == 0
    assert [r.step for r in layout.list_checkpoints(run, "main")][-1] == 2


def test_bad_config_exits_2_and_writes_nothing(tiny_toml, tmp_path, capsys):
    cfg, run = _config(tmp_path, tiny_toml.replace("lr = 0.003", "lr = 0.003\nmomentum = 0.9")), tmp_path / "run"
    assert main(["train", str(cfg), "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert "unknown key optim.momentum" in err and "tiny.toml" in err
    assert not run.exists()
    assert main(["train", str(_config(tmp_path, tiny_toml)), "--run", str(run), "--set", "train.batch_size=x"]) == 2
    assert "train.batch_size='x'" in capsys.readouterr().err
    assert main(["train", "--run", str(tmp_path / "nothing")]) == 2
    assert "not an existing run" in capsys.readouterr().err


def test_plan_sets_main_length(tiny_toml, tmp_path, capsys):
    plan = tmp_path / "plan.json"
    plan.write_text("{not json")
    assert main(["train", str(_config(tmp_path, tiny_toml)), "--run", str(tmp_path / "r"), "--plan", str(plan)]) == 2
    assert "plan.json" in capsys.readouterr().err


def test_plan_trains_main_to_last_fork_with_a_checkpoint_at_each(tiny_toml, tmp_path, capsys):
    from riverbed.schedules.budget_plan import plan_budgets

    plan = tmp_path / "plan.json"
    plan_budgets([4, 8], decay=0.25, warmup=2).save(str(plan))
    run = tmp_path / "r"
    cfg = _config(tmp_path, tiny_toml.replace("ckpt_every = 2", "ckpt_every = 0").replace("max_steps = 4\n", ""))
    assert main(["train", str(cfg), "--run", str(run), "--plan", str(plan), "--no-progress"]) == 0
    assert [r.step for r in layout.list_checkpoints(run, "main")] == [3, 6]


def test_plan_for_another_warmup_is_refused_before_training(tiny_toml, tmp_path, capsys):
    from riverbed.schedules.budget_plan import plan_budgets

    plan = tmp_path / "plan.json"
    plan_budgets([4, 8], decay=0.25, warmup=3).save(str(plan))  # the run's main has warmup = 2
    run = tmp_path / "r"
    cfg = _config(tmp_path, tiny_toml.replace("max_steps = 4\n", ""))
    assert main(["train", str(cfg), "--run", str(run), "--plan", str(plan), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "warmup=3" in err and "warmup=2" in err
    assert not run.exists()  # refused before the run directory is created
