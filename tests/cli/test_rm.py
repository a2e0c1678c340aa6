"""`riverbed rm RUN BRANCH [--recursive]` and `riverbed ls` with a branch directory gone."""

import json
import os
from dataclasses import replace

import pytest

from riverbed.checkpoints import layout
from riverbed.cli.main import main
from riverbed.runs import BranchRecord, Run
from runs.helpers import fake_checkpoint, make_tree, point

B100, B300 = "linear-from100-len20", "linear-from300-len60"


@pytest.fixture
def tree(tmp_path):
    run = make_tree(tmp_path / "r")
    for name, step in ((B100, 120), (B300, 360)):
        fake_checkpoint(run.path, name, step, loss=3.0)
    # a branch forked from B300 (e.g. a merge or a further decay): B300 has a child
    run.add_branch(BranchRecord("child", "decay", {"kind": "decay_branch"}, parent=B300, fork=point(360), status="stopped"))
    fake_checkpoint(run.path, "child", 380)
    return Run.open(run.path)


def _names(run):
    return sorted(json.loads((run.path / layout.MANIFEST).read_text())["branches"])


def test_rm_removes_directory_and_entry_and_ls_forgets_it(tree, capsys):
    assert main(["rm", str(tree.path), B100]) == 0
    assert f"removed branch {B100}" in capsys.readouterr().out
    assert B100 not in _names(tree) and not layout.branch_dir(tree.path, B100).exists()
    assert main(["ls", str(tree.path)]) == 0
    assert B100 not in capsys.readouterr().out
    assert [p.name for p in (tree.path / layout.BRANCHES).iterdir() if p.name.startswith(".")] == []


def test_rm_refuses_main_and_parents_unless_recursive(tree, capsys):
    before = (tree.path / layout.MANIFEST).read_text()
    assert main(["rm", str(tree.path), "main"]) == 2
    assert "root branch" in capsys.readouterr().err
    assert main(["rm", str(tree.path), "main", "--recursive"]) == 2
    assert main(["rm", str(tree.path), B300]) == 2
    assert "branches forked from it (child)" in capsys.readouterr().err
    assert main(["rm", str(tree.path), "nope"]) == 2
    assert "no branch 'nope'" in capsys.readouterr().err
    assert (tree.path / layout.MANIFEST).read_text() == before
    assert layout.branch_dir(tree.path, B300).is_dir()
    assert main(["rm", str(tree.path), B300, "--recursive"]) == 0
    assert capsys.readouterr().out.split() == ["removed", "branch", B300, "removed", "branch", "child"]
    assert _names(tree) == [B100, "main"]
    assert not layout.branch_dir(tree.path, "child").exists()


def test_rm_refuses_a_branch_being_trained(tree, capsys):
    tree.update_branch(B100, lambda b: replace(b, status="running", pid=os.getpid(), host=None))
    assert main(["rm", str(tree.path), B100]) == 2
    assert "being trained" in capsys.readouterr().err
    assert B100 in _names(tree)


def test_ls_shows_a_branch_whose_directory_is_missing(tree, capsys):
    import shutil

    shutil.rmtree(layout.branch_dir(tree.path, B100))
    assert main(["ls", str(tree.path)]) == 0
    out = capsys.readouterr().out
    assert "directory missing" in out
    assert main(["ls", str(tree.path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["missing_directories"] == [B100]
    assert main(["rm", str(tree.path), B100]) == 0  # forgetting it works without the directory
    assert B100 not in _names(tree)


def test_rm_crash_between_rename_and_manifest_is_finished_by_rm(tree, monkeypatch, capsys):
    import riverbed.runs.run as run_mod

    def crash(*a, **k):
        raise OSError("disk on fire")

    monkeypatch.setattr(run_mod, "write_manifest", crash)
    with pytest.raises(OSError):
        tree.delete_branch(B100)
    monkeypatch.undo()
    # the branch's own name never holds a half-deleted directory; the entry stays, shown as missing
    assert not layout.branch_dir(tree.path, B100).exists()
    assert B100 in _names(tree) and Run.open(tree.path).missing_dirs() == [B100]
    assert Run.open(tree.path).delete_branch(B100) == [B100]
    assert B100 not in _names(tree)
    assert not any(p.name.startswith(".") for p in (tree.path / layout.BRANCHES).iterdir())


def test_rm_of_a_symlinked_branch_removes_the_link_only_and_leaves_nothing_behind(tree, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    d = layout.branch_dir(tree.path, B100)
    d.rename(elsewhere)
    d.symlink_to(elsewhere, target_is_directory=True)
    kept = sorted(p.name for p in elsewhere.rglob("*"))
    assert main(["rm", str(tree.path), B100]) == 0
    assert not os.path.lexists(d) and not [p for p in d.parent.iterdir() if p.name.startswith(".")]
    assert sorted(p.name for p in elsewhere.rglob("*")) == kept  # the link's target is not riverbed's
    # the same name again: a dangling link left by hand is removed by rm too, never a NotADirectoryError
    tree.add_branch(BranchRecord(B100, "decay", {"kind": "decay_branch"}, parent="main", fork=point(100)))
    d.symlink_to(tmp_path / "gone", target_is_directory=True)
    assert main(["rm", str(tree.path), B100]) == 0
    assert "Traceback" not in capsys.readouterr().err and not os.path.lexists(d)


def test_branch_onto_a_dangling_link_exits_2_naming_it(run_copy, capsys):
    run = run_copy / "r"
    link = layout.branch_dir(run, "linear-from2-len2")
    link.symlink_to(run_copy / "gone", target_is_directory=True)
    argv = ["branch", str(run), "--from", "2", "--shape", "linear", "--length", "2", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "dangling symbolic link" in err and "Traceback" not in err
    link.unlink()
    assert main(argv) == 0
