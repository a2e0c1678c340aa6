"""`riverbed branch RUN --command 'CMD'`: the placeholders, ingesting what CMD wrote, the branch
recorded like a native one; a failing CMD and one that writes nothing are failed branches (exit 2)."""

from __future__ import annotations

import json
import sys

import pytest

from riverbed.checkpoints import layout
from riverbed.cli.main import main
from riverbed.orchestration.adopt import adopt
from riverbed.orchestration.command_branch import expand
from riverbed.runs import Run
from riverbed.schedules.branch_file import read_branch_schedule
from tests.orchestration.conftest import tree_hash
from tests.runs.conftest import _tiny_main_master, tiny_data, tiny_main  # noqa: F401  (fixtures)


@pytest.fixture
def adopted(hf_output, tmp_path):
    run, _ = adopt(hf_output, tmp_path / "run")
    return run


def test_expand_quotes_paths_and_leaves_other_braces(tmp_path):
    cmd = expand("python x.py {fork} --cfg '{\"a\": 1}' {out}", {"fork": tmp_path / "a b", "out": tmp_path / "o"})
    assert f"'{tmp_path}/a b'" in cmd and "'{\"a\": 1}'" in cmd


def test_a_plain_torch_loop_branch_is_recorded_like_a_native_one(adopted, hf_output, recipe_env, capsys):
    before = tree_hash(hf_output)
    rc = main(["branch", str(adopted.path), "--from", "32", "--shape", "linear", "--length", "16",
               "--command", recipe_env("plain_decay.py"), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    run = Run.open(adopted.path)
    b = run.branch("linear-from32-len16")
    assert (b.kind, b.parent, b.status, b.fork.step, b.final.step) == ("decay", "main", "finished", 32, 48)
    assert b.fork.tokens == 32 * 192 and b.final.tokens == 48 * 192 and b.final.flops > b.fork.flops
    log = (layout.branch_dir(run.path, b.name) / "out" / "log.csv").read_text().splitlines()
    assert b.final.eval_loss == pytest.approx(float(log[-1].split(",")[-1]))
    sched = read_branch_schedule(layout.branch_dir(run.path, b.name) / "schedule.json")
    assert (sched.start_step, sched.end_step, sched.lr) == (32, 48, pytest.approx(3e-3))
    assert sched.spec == b.schedule and sched.lr_at(47) == 0.0
    assert [c.step for c in run.checkpoints(b.name)] == [48]
    evals = [json.loads(x) for x in layout.metrics_path(run.path, b.name).read_text().splitlines()]
    assert [r["step"] for r in evals if r["kind"] == "eval"] == [36, 40, 44, 48]
    assert [p.kind for p in run.finished_points()] == ["decay"]
    assert tree_hash(hf_output) == before


def test_a_failing_command_is_a_failed_branch_with_its_exit_code_and_log_tail(adopted, recipe_env, capsys):
    rc = main(["branch", str(adopted.path), "--from", "16", "--shape", "linear", "--length", "8", "--name", "oom",
               "--command", recipe_env("failing.py"), "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "exited with code 3" in err and "CUDA out of memory (pretend)" in err and "command.log" in err
    b = Run.open(adopted.path).branch("oom")
    assert b.status == "failed" and "exited with code 3" in b.error


def test_a_command_that_writes_nothing_is_a_failed_branch_naming_out(adopted, recipe_env, capsys):
    rc = main(["branch", str(adopted.path), "--from", "16", "--shape", "linear", "--length", "8", "--name", "empty",
               "--command", recipe_env("writes_nothing.py"), "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    out = layout.branch_dir(adopted.path, "empty") / "out"
    assert f"{out}: the command wrote no checkpoint riverbed can read" in err and "notes.txt" in err
    assert Run.open(adopted.path).branch("empty").status == "failed"


def test_a_command_writing_into_the_fork_fails_its_branch(adopted, hf_output, tmp_path, recipe_env, capsys):
    # a copy of the source: this command does change the files behind the fork's links
    import shutil

    src = tmp_path / "copy"
    shutil.copytree(hf_output, src)
    run, _ = adopt(src, tmp_path / "run2")
    rc = main(["branch", str(run.path), "--from", "16", "--shape", "linear", "--length", "8", "--name", "w",
               "--command", recipe_env("writes_into_fork.py"), "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "the command changed the fork checkpoint" in err and "config.json" in err
    assert Run.open(run.path).branch("w").status == "failed"


def test_bad_requests_are_refused_before_anything_runs(adopted, capsys):
    before = adopted.manifest
    assert main(["branch", str(adopted.path), "--from", "12", "--shape", "linear", "--length", "8",
                 "--command", "true {out}"]) == 2
    assert "no checkpoint at step 12 (saved steps: 8, 16, 24, 32, 40, 48)" in capsys.readouterr().err
    assert main(["branch", str(adopted.path), "--from", "16", "--shape", "linear", "--length", "8"]) == 2
    assert "was adopted" in capsys.readouterr().err and "--command" in capsys.readouterr().err + "--command"
    assert main(["branch", str(adopted.path), "--from", "16", "--shape", "linear", "--length", "8", "--command", "echo hi"]) == 2
    assert "uses neither {fork} nor {out}" in capsys.readouterr().err
    assert Run.open(adopted.path).manifest.branches == before.branches


@pytest.mark.slow
def test_through_the_local_executor(adopted, recipe_env, capsys):
    rc = main(["branch", str(adopted.path), "--from", "40", "--shape", "linear", "--length", "8",
               "--command", recipe_env("plain_decay.py"), "--executor", "local", "--jobs", "1", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    b = Run.open(adopted.path).branch("linear-from40-len8")
    assert b.status == "finished" and b.job is not None and b.job.backend == "local" and b.final.step == 48


def test_steps_counted_from_the_fork_are_shifted(adopted, tmp_path, capsys):
    script = tmp_path / "local_steps.py"
    script.write_text(
        "import shutil, sys, pathlib\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "fork, sched, out = sys.argv[1:4]\n"
        "shutil.copytree(pathlib.Path(fork).resolve(), pathlib.Path(out) / 'checkpoint-8', symlinks=False)\n"
        "(pathlib.Path(out) / 'log.csv').write_text('step,lr,loss,eval_loss\\n4,0.002,2.0,\\n8,0.0,1.9,1.8\\n')\n")
    rc = main(["branch", str(adopted.path), "--from", "16", "--shape", "linear", "--length", "8", "--name", "local",
               "--command", f"{sys.executable} {script} {{fork}} {{schedule}} {{out}}", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    b = Run.open(adopted.path).branch("local")
    assert b.final.step == 24 and b.final.eval_loss == pytest.approx(1.8) and b.status == "finished"


def test_a_command_branch_of_a_riverbed_run_is_evaluated_on_its_held_out_data(tiny_main, recipe_env, capsys):
    from riverbed.training.evaluate import evaluate_checkpoints

    rc = main(["branch", str(tiny_main.path), "--from", "20", "--shape", "linear", "--length", "8", "--name", "own",
               "--command", recipe_env("plain_decay.py"), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    run = Run.open(tiny_main.path)
    b = run.branch("own")
    assert b.status == "finished" and b.final.step == 28 and b.fork.step == 20
    want = evaluate_checkpoints([run.path / b.final.checkpoint], run=run.path)[0].loss
    assert b.final.eval_loss == pytest.approx(want)  # riverbed's held-out split, not the command's own
    logged = [e for e in b.events if e.get("type") == "eval"][0]["logged"]
    assert logged != pytest.approx(want)
