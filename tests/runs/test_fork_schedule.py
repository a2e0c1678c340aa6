"""`riverbed branch RUN --schedule SPEC`: a decay branch that follows a whole-run schedule (e.g. the
one `riverbed predict optimize` writes) from the fork: runs.fork.schedule_request and the CLI.

The tiny run (conftest ``trained``): warmup 2 then constant LR 0.003, checkpoints at steps 2 and 4.
Its main multipliers are 0.5, 1, 1, 1, ...
"""

import hashlib
import json

import pytest

from riverbed.checkpoints import layout
from riverbed.cli.main import main
from riverbed.errors import RunError
from riverbed.executors.branches import fork_branches
from riverbed.runs import Run
from riverbed.runs.fork import departure_step, schedule_request
from riverbed.runs.metrics import read_metrics
from riverbed.schedules import WarmupStable, WSD, Tabulated

#: Leaves main at step 5: a branch from the checkpoint at 4 follows it exactly.
TABLE = [0.5, 1.0, 1.0, 1.0, 1.0, 0.7, 0.4, 0.1]
#: The linear decay from step 4 over 4 steps to 0, written out: j -> 1 - (j + 1) / 4.
LINEAR = [0.5, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0]


def digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def tab(values, warmup=2):
    return {"type": "tabulated", "table": values, "warmup": warmup}


def test_departure_step():
    assert departure_step(WarmupStable(2), Tabulated(tuple(TABLE), warmup=2), 8) == 5
    assert departure_step(WarmupStable(2), Tabulated(tuple(TABLE[:5]), warmup=2), 5) == 5  # never leaves
    assert departure_step(WarmupStable(4), WSD(warmup=2, stable=5, decay=3), 10) == 0  # other warmup: parts at once


def test_request_defaults_to_the_newest_checkpoint_before_the_schedules_part(run_copy):
    run = Run.open(run_copy / "r")
    req = schedule_request(run, tab(TABLE))
    assert (req.from_step, req.length, req.shape) == (4, 4, "tabulated")
    assert dict(req.extra)["table"] == (1.0, 0.7, 0.4, 0.1)
    assert req.name == "tabulated-from4-len4"
    assert schedule_request(run, tab(TABLE), from_step=2).length == 6


def test_tabulated_branch_trains_the_table_and_equals_the_same_linear_decay(run_copy):
    r = run_copy / "r"
    [rec] = fork_branches(r, schedule=tab(LINEAR), name="tab", progress=False)
    [lin] = fork_branches(r, 4, "linear", 4, name="lin", progress=False)
    assert rec.status == lin.status == "finished"
    assert rec.schedule["shape"] == "tabulated" and rec.schedule["table"] == [0.75, 0.5, 0.25, 0.0]
    # The same multipliers as the linear decay: the same weights, byte for byte.
    a = layout.list_checkpoints(r, "tab")[-1].path / layout.MODEL_FILE
    b = layout.list_checkpoints(r, "lin")[-1].path / layout.MODEL_FILE
    assert a.read_bytes() == b.read_bytes()
    lrs = {row["step"]: row["lr"] for row in read_metrics(layout.metrics_path(r, "tab")) if row.get("kind") == "train"}
    # The logged LR of each update (the row's step counts updates done, so update s logs at s + 1).
    assert [round(lrs[s + 1] / 0.003, 9) for s in range(4, 8)] == [0.75, 0.5, 0.25, 0.0]


def test_cli_takes_the_optimize_json_document_and_a_toml_schedule_table(run_copy, capsys):
    r = run_copy / "r"
    doc = run_copy / "opt.json"
    doc.write_text(json.dumps({"law": "mpl", "steps": 8, "schedule": tab(TABLE), "lr": [0.003 * v for v in TABLE]}))
    assert main(["branch", str(r), "--schedule", str(doc), "--no-progress"]) == 0
    assert "tabulated-from4-len4" in capsys.readouterr().out
    toml = run_copy / "sched.toml"
    toml.write_text("[schedule]\ntype = \"tabulated\"\nwarmup = 2\ntable = " + json.dumps(TABLE) + "\n")
    assert main(["branch", str(r), "--schedule", str(toml), "--from", "2", "--name", "early", "--no-progress"]) == 0
    m = Run.open(r).manifest.branches
    assert m["early"].status == "finished" and m["early"].fork.step == 2 and m["early"].final.step == 8


@pytest.mark.parametrize("extra, msg", [
    (["--from", "4"], "leaves the main branch's at step 3"),
    (["--shape", "linear"], "drop --shape"),
    (["--from", "2,4"], "one --from step"),
])
def test_cli_refusals_leave_the_run_as_it_was(run_copy, capsys, extra, msg):
    r = run_copy / "r"
    before = digest(r)
    spec = json.dumps(tab([0.5, 1.0, 1.0, 0.8, 0.6, 0.4]))  # leaves main at step 3: only the checkpoint at 2 qualifies
    assert main(["branch", str(r), "--schedule", spec, *extra, "--no-progress"]) == 2
    assert msg in capsys.readouterr().err
    assert digest(r) == before


def test_refusals(run_copy):
    run = Run.open(run_copy / "r")
    with pytest.raises(RunError, match="no main checkpoint is saved at or before it"):
        schedule_request(run, tab([0.9, 0.8, 0.7]))  # leaves at step 0
    with pytest.raises(Exception, match="has no end"):
        schedule_request(run, {"type": "constant"})
    with pytest.raises(RunError, match="nothing is left to train"):
        schedule_request(run, tab([0.5, 1.0, 1.0, 1.0]), from_step=4)


def test_a_tabulated_branch_as_a_local_job_equals_the_one_trained_here(run_copy, tmp_path):
    """The table travels in the job's JSON payload (a list) and comes back the same schedule: same weights."""
    import shutil

    from riverbed.executors import ExecutorConfig

    here, there = run_copy / "r", tmp_path / "r2"
    shutil.copytree(here, there)
    [a] = fork_branches(here, schedule=tab(TABLE), progress=False)
    [b] = fork_branches(there, schedule=tab(TABLE), progress=False, executor=ExecutorConfig("local", jobs=1))
    assert a.status == b.status == "finished" and a.schedule == b.schedule
    wa = layout.list_checkpoints(here, a.name)[-1].path / layout.MODEL_FILE
    wb = layout.list_checkpoints(there, b.name)[-1].path / layout.MODEL_FILE
    assert wa.read_bytes() == wb.read_bytes()
