"""run.json: branch names that stay inside RUN/branches, a lineage without cycles, reads that agree
with writes, a schema checked on read, and no lost update between concurrent writers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from riverbed.checkpoints import layout
from riverbed.cli.main import main
from riverbed.errors import RunError
from riverbed.runs import BranchRecord, Run
from runs.helpers import fake_checkpoint, make_tree, point


def _tree_bytes(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _edit(run_path, fn):
    """Hand-edit run.json (what a user with an editor does)."""
    path = run_path / layout.MANIFEST
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


# ---- item 1: names from run.json never reach beyond RUN/branches/<name> ------------------------------


@pytest.mark.parametrize("bad", [".", "", "..", "a/b", "../main", ".hidden", "x" * 101, "a\nb"])
def test_a_bad_branch_name_in_run_json_is_refused_and_nothing_is_removed(tmp_path, capsys, bad):
    run = make_tree(tmp_path / "r")
    b = "linear-from100-len20"
    fake_checkpoint(run.path, b, 120)

    def rename(d):
        rec = d["branches"].pop(b)
        rec["name"] = bad
        d["branches"][bad] = rec

    _edit(run.path, rename)
    before = _tree_bytes(run.path)
    assert main(["rm", str(run.path), bad]) == 2
    err = capsys.readouterr().err
    assert "branch name" in err and "Traceback" not in err
    assert _tree_bytes(run.path) == before  # main's checkpoints and run.json untouched


@pytest.mark.parametrize("bad", [".", "", "a/b", ".x"])
def test_the_api_refuses_a_bad_branch_name(tmp_path, bad):
    run = make_tree(tmp_path / "r")
    with pytest.raises(RunError, match="branch name"):
        run.add_branch(BranchRecord(bad, "decay", {}, parent="main", fork=point(100)))
    with pytest.raises(RunError, match="branch name"):
        layout.branch_dir(run.path, bad)


def test_a_record_filed_under_another_key_is_refused(tmp_path, capsys):
    run = make_tree(tmp_path / "r")
    _edit(run.path, lambda d: d["branches"]["linear-from100-len20"].update(name="main"))
    assert main(["ls", str(run.path)]) == 2
    assert "linear-from100-len20" in capsys.readouterr().err


def test_a_parent_cycle_never_lets_rm_reach_main(tmp_path, capsys):
    run = make_tree(tmp_path / "r")
    b = "linear-from100-len20"
    fake_checkpoint(run.path, b, 120)

    def cycle(d):
        d["branches"]["main"]["parent"] = b

    _edit(run.path, cycle)
    before = _tree_bytes(run.path)
    assert main(["rm", str(run.path), b, "--recursive"]) == 2
    err = capsys.readouterr().err
    assert "cycle" in err and "Traceback" not in err
    assert _tree_bytes(run.path) == before


# ---- item 4: no lost update between a writer and a reconciling reader ---------------------------------

_WRITER = r"""
import sys
from riverbed.runs import BranchRecord, Point, Run
from runs.helpers import fake_checkpoint
run = Run.open(sys.argv[1])
for i in range(int(sys.argv[2])):
    name = f"d{i}"
    run.add_branch(BranchRecord(name, "decay", {}, parent="main", fork=Point(100, 10000, 6e4)))
    fake_checkpoint(run.path, name, 110)  # newer than the record's progress: a reader reconciles it
    run.finish_branch(name, Point(120, 12000, 7.2e4, 3.0))
"""

_READER = r"""
import sys, time
from riverbed.cli.main import main
from riverbed.runs import Run
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    Run.open(sys.argv[1]).reconcile()
    main(["ls", sys.argv[1], "--json"])
"""


def test_two_processes_never_lose_a_finished_branch(tmp_path):
    run = make_tree(tmp_path / "r")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), *sys.path])}
    n = 40
    reader = subprocess.Popen([sys.executable, "-c", _READER, str(run.path), "6"], env=env, stdout=subprocess.DEVNULL)
    writer = subprocess.run([sys.executable, "-c", _WRITER, str(run.path), str(n)], env=env, capture_output=True, text=True)
    reader.wait(timeout=60)
    assert writer.returncode == 0, writer.stderr
    recs = json.loads((run.path / layout.MANIFEST).read_text())["branches"]
    lost = [f"d{i}" for i in range(n) if recs[f"d{i}"]["status"] != "finished" or recs[f"d{i}"]["final"] is None]
    assert not lost, f"finished branches lost: {lost}"


# ---- items 5 and 8: a damaged run.json is refused on read, naming the key; never rewritten ----------

B100 = "linear-from100-len20"


def _set(*path, value):
    def fn(d):
        for key in path[:-1]:
            d = d[key]
        d[path[-1]] = value
    return fn


CORRUPT = {
    "flops-inf-string": (_set("branches", B100, "final", "flops", value="inf"), "final.flops"),
    "step-1e400": (None, "step"),  # raw text below: 1e400 parses to inf
    "config-string": (_set("config", value="abc"), "config"),
    "model-string": (_set("model", value="abc"), "model"),
    "schedule-string": (_set("branches", B100, "schedule", value="abc"), "schedule"),
    "n_params-big": (_set("model", "n_params", value="big"), "model.n_params"),
    "fork-string": (_set("branches", B100, "fork", value="x"), "fork"),
    "final-list": (_set("branches", B100, "final", value=[1]), "final"),
    "progress-number": (_set("branches", "main", "progress", value=3), "progress"),
    "milestones-ints": (_set("branches", B100, "milestones", value=[1, 2]), "milestones[0]"),
    "events-object": (_set("branches", B100, "events", value={"a": 1}), "events"),
    "pid-string": (_set("branches", B100, "pid", value="abc"), "pid"),
    "pid-huge": (_set("branches", B100, "pid", value=2**70), "pid"),
    "pid-minus-one": (_set("branches", B100, "pid", value=-1), "pid"),
    "checkpoint-escapes": (_set("branches", B100, "final", "checkpoint", value="../../etc"), "checkpoint"),
}


@pytest.mark.parametrize("case", [*CORRUPT, "not-utf8", "deep-nesting"])
def test_a_corrupt_manifest_exits_2_naming_the_key_and_is_never_rewritten(tmp_path, capsys, case):
    run = make_tree(tmp_path / "r")
    path = run.path / layout.MANIFEST
    key = {"not-utf8": "UTF-8", "deep-nesting": "nested"}.get(case)
    if case == "not-utf8":
        path.write_bytes(path.read_bytes().replace(b'"main"', b'"m\xff\xfein"', 1))
    elif case == "deep-nesting":
        path.write_text('{"format": "riverbed.run/1", "branches": {}, "config": ' + "[" * 200_000 + "]" * 200_000 + "}")
    elif case == "step-1e400":
        text = json.dumps(json.loads(path.read_text()))
        path.write_text(text.replace('"step": 120', '"step": 1e400', 1))
        key = "step"
    else:
        edit, key = CORRUPT[case]
        _edit(run.path, edit)
    before = path.read_bytes()
    for argv in (["ls", str(run.path)], ["ls", str(run.path), "--json"], ["rm", str(run.path), B100],
                 ["report", str(run.path), "--out", str(tmp_path / "r.html")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err and key in err, (argv, err)
    assert path.read_bytes() == before


def test_every_manifest_riverbed_writes_reads_back(tmp_path):
    from riverbed.runs.manifest import Point, read_manifest

    run = make_tree(tmp_path / "r")
    run.set_progress("main", Point(600, 60000, 3.6e5, float("nan")))  # a non-finite loss: null + its word
    m = read_manifest(run.path / layout.MANIFEST)
    assert m.branches["main"].progress.eval_loss_nonfinite == "nan"
    with pytest.raises(RunError, match="flops"):
        Point(1, 1, float("inf"))  # nothing run.json cannot hold is ever built, so never written
