import json
import os
from dataclasses import replace

import pytest

from riverbed import Run as LazyRun
from riverbed.checkpoints import layout
from riverbed.errors import RunError
from riverbed.runs import BranchRecord, Run
from riverbed.runs.manifest import read_manifest
from riverbed.runs.view import as_json

from .helpers import TOKENS_PER_STEP, fake_checkpoint, make_tree, point


def test_lazy_export():
    assert LazyRun is Run


def test_create_refuses_existing_and_open_refuses_non_run(tmp_path):
    Run.create(tmp_path / "r", {"model": {}})
    with pytest.raises(RunError, match="already holds a run"):
        Run.create(tmp_path / "r", {"model": {}})
    assert Run.create(tmp_path / "r", {"model": {}}, resume=True).path == tmp_path / "r"
    with pytest.raises(RunError, match=r"model.d_model differs from the run.s .*run.json \(None -> 3\)"):
        Run.create(tmp_path / "r", {"model": {"d_model": 3}}, resume=True)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x").write_text("x")
    with pytest.raises(RunError, match="not a riverbed run.*has no run.json"):
        Run.open(tmp_path / "plain")
    with pytest.raises(RunError, match="not an empty directory"):
        Run.create(tmp_path / "plain", {"model": {}})
    with pytest.raises(RunError, match="does not exist"):
        Run.open(tmp_path / "nope")


def test_corrupt_manifest_names_file(tmp_path):
    Run.create(tmp_path / "r", {})
    (tmp_path / "r" / "run.json").write_text("{not json")
    with pytest.raises(RunError, match=r"run\.json: corrupt manifest"):
        Run.open(tmp_path / "r")


def test_tree_lineage_points_and_events(tmp_path):
    run = make_tree(tmp_path / "r")
    assert [b.name for b in run.branches] == ["main", "linear-from100-len20", "linear-from300-len60"]
    # reconcile picked the newest main checkpoint up as progress
    main = run.branch("main")
    assert main.progress.step == 500 and main.progress.tokens == 500 * TOKENS_PER_STEP
    assert main.progress.eval_loss == pytest.approx(2.5)
    assert main.progress.checkpoint == "branches/main/checkpoints/step_0000000500"
    pts = run.finished_points()
    assert [(p.branch, p.kind, p.tokens, p.loss) for p in pts] == [
        ("linear-from100-len20", "decay", 12000, 3.5),
        ("linear-from300-len60", "decay", 36000, 2.5),
    ]
    run.record_event("main", {"type": "spike", "step": 250, "loss": 9.0})
    ev = run.branch("main").events[-1]
    assert ev["type"] == "spike" and ev["step"] == 250 and "time" in ev
    with pytest.raises(RunError, match="not JSON-serialisable"):
        run.record_event("main", {"x": object()})
    with pytest.raises(RunError, match="no branch 'nope'"):
        run.record_event("nope", {})
    with pytest.raises(RunError, match="already exists"):
        run.add_branch(BranchRecord("main", "main", {}))
    j = as_json(run)
    assert j["accounting"]["tree_tokens"] == 500 * 100 + 20 * 100 + 60 * 100
    assert j["accounting"]["scratch_tokens"] == 12000 + 36000


def test_checkpoint_lookup_lists_saved_steps(tmp_path):
    run = make_tree(tmp_path / "r")
    assert run.checkpoint(300).path.name == "step_0000000300"
    with pytest.raises(RunError, match=r"no checkpoint at step 250 \(saved steps: 100, 200, 300, 400, 500\)"):
        run.checkpoint(250)


def test_training_context_marks_status(tmp_path):
    run = make_tree(tmp_path / "r")
    rec = BranchRecord("b", "decay", {}, parent="main", fork=point(200))
    with run.training(rec):
        assert run.branch("b").status == "running" and run.branch("b").pid == os.getpid()
    assert run.branch("b").status == "stopped"
    with pytest.raises(ZeroDivisionError):
        with run.training(rec):
            1 / 0
    assert run.branch("b").status == "failed" and "ZeroDivisionError" in run.branch("b").error
    with run.training(rec):
        run.finish_branch("b", point(220, 3.0))
    b = run.branch("b")
    assert b.status == "finished" and b.error is None and b.final.eval_loss == 3.0


def test_reconcile_dead_process_and_newer_checkpoints(tmp_path):
    run = make_tree(tmp_path / "r")
    # A crashed trainer: marked running by a pid that no longer exists, and a checkpoint
    # written after its last manifest update.
    run.update_branch("main", lambda b: replace(b, status="running", pid=2**22 + 12345, host=__import__("socket").gethostname()))
    fake_checkpoint(tmp_path / "r", "main", 600, loss=1.5)
    main = Run.open(tmp_path / "r").branch("main")
    assert main.status == "stopped" and main.pid is None
    assert main.progress.step == 600 and main.progress.eval_loss == 1.5
    # ... without writing (reading never writes: a read-only run reads the same); a writer persists it.
    assert read_manifest(tmp_path / "r" / "run.json").branches["main"].status == "running"
    Run.open(tmp_path / "r").reconcile()
    assert read_manifest(tmp_path / "r" / "run.json").branches["main"].progress.step == 600


def test_crash_mid_write_keeps_previous_manifest(tmp_path, monkeypatch):
    run = make_tree(tmp_path / "r")
    before = (tmp_path / "r" / "run.json").read_bytes()
    import riverbed.io.atomic as atomic

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(atomic, "_rename2", boom)  # the final rename (exchange) fails
    with pytest.raises(OSError):
        run.record_event("main", {"type": "x"})
    monkeypatch.undo()
    assert (tmp_path / "r" / "run.json").read_bytes() == before
    assert not [p for p in (tmp_path / "r").iterdir() if ".tmp-" in p.name]
    json.loads(before)  # still valid
    assert Run.open(tmp_path / "r").branch("main").events == ()


def test_bad_branch_kind_and_status():
    with pytest.raises(RunError, match="kind 'weird'"):
        BranchRecord("x", "weird", {})
    with pytest.raises(RunError, match="status 'paused'"):
        BranchRecord("x", "main", {}, status="paused")


def test_checkpoints_uses_layout(tmp_path):
    run = make_tree(tmp_path / "r")
    assert [c.step for c in run.checkpoints()] == [100, 200, 300, 400, 500]
    # a half-written checkpoint (no state.json) is not listed
    d = layout.checkpoint_dir(tmp_path / "r", "main", 700)
    d.mkdir()
    (d / layout.MODEL_FILE).write_bytes(b"x")
    assert [c.step for c in run.checkpoints()][-1] == 500
