"""Bad input and crashes: nothing lost, nothing let in (fast; the kill -9 suite is tests/test_crash_kill9.py).

Covers atomic outputs that must not replace what appeared meanwhile, the overwrite exchange,
per-branch writer locks, validation before a run directory exists, stale temporaries,
non-finite config values and checkpoints, and strict JSON in run.json / metrics.jsonl.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import riverbed
import riverbed.io.atomic as atomic
from riverbed.checkpoints import layout
from riverbed.io.atomic import atomic_dir, atomic_path, cleanup_stale_tmp
from riverbed.checkpoints.layout import writer_lock
from riverbed.cli.main import main
from riverbed.errors import LockedError, OutputExistsError


def strict_loads(text: str):
    def bad(c):
        raise AssertionError(f"bare {c} in JSON")

    return json.loads(text, parse_constant=bad)


@pytest.fixture(params=["renameat2", "fallback"])
def rename_mode(request, monkeypatch):
    """Run an atomic-write test with Linux renameat2 and with the portable fallback."""
    if request.param == "fallback":
        monkeypatch.setattr(atomic, "_renameat2", None)
    elif atomic._renameat2 is None:
        pytest.skip("renameat2 not available here")
    return request.param


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---- item 2: outputs that appeared meanwhile are never replaced ---------------------------------


@pytest.mark.parametrize("intruder", ["non-empty dir", "empty dir", "file"])
def test_atomic_dir_refuses_an_out_that_appeared(tmp_path, rename_mode, intruder):
    out = tmp_path / "merged"
    with pytest.raises(OutputExistsError) as err:
        with atomic_dir(out) as tmp:
            (tmp / "model.safetensors").write_text("new")
            if intruder == "file":
                out.write_text("user's file")
            else:
                out.mkdir()
                if intruder == "non-empty dir":
                    (out / "notes.txt").write_text("user's file")
    msg = str(err.value)
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("merged.new-")]
    assert len(kept) == 1 and str(kept[0]) in msg and str(out) in msg
    assert (kept[0] / "model.safetensors").read_text() == "new"
    if intruder == "file":
        assert out.read_text() == "user's file"
    elif intruder == "non-empty dir":
        assert (out / "notes.txt").read_text() == "user's file"
    else:
        assert out.is_dir() and not any(out.iterdir())


def test_atomic_path_without_overwrite_refuses_a_file_that_appeared(tmp_path, rename_mode):
    out = tmp_path / "m.safetensors"
    with pytest.raises(OutputExistsError, match="kept at"):
        with atomic_path(out, overwrite=False) as tmp:
            tmp.write_text("new")
            out.write_text("theirs")
    assert out.read_text() == "theirs"
    assert [p.read_text() for p in tmp_path.glob("m.safetensors.new-*")] == ["new"]


def _tiny_inputs(root: Path) -> list[Path]:
    paths = []
    for i in range(2):
        p = root / f"ckpt{i}" / "model.safetensors"
        p.parent.mkdir(parents=True)
        save_file({"w": np.full((4, 4), float(i + 1), dtype=np.float32)}, str(p))
        paths.append(p.parent)
    return paths


def test_two_concurrent_merges_to_one_out_second_exits_2(tmp_path, monkeypatch, capsys):
    """Faithful simulation: merge B runs to completion to the same OUT while merge A writes."""
    a, b = _tiny_inputs(tmp_path)
    out = tmp_path / "out"
    real = atomic._fsync_tree
    calls = []

    def other_merge_finishes_first(root):
        if not calls:
            calls.append(root)
            assert main(["merge", str(out), str(b), str(a), "--method", "weights", "--weights", "1,0"]) == 0
        real(root)

    monkeypatch.setattr(atomic, "_fsync_tree", other_merge_finishes_first)
    rc = main(["merge", str(out), str(a), str(b)])
    assert rc == 2
    err = capsys.readouterr().err
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("out.new-")]
    assert len(kept) == 1 and str(kept[0]) in err and str(out) in err
    # OUT is B's merge (weights 1,0: input b = 2.0); A's finished merge (SMA = 1.5) is beside it.
    assert float(load_file(str(out / "model.safetensors"))["w"][0, 0]) == 2.0
    assert float(load_file(str(kept[0] / "model.safetensors"))["w"][0, 0]) == 1.5


# ---- item 3: overwrite is an exchange; the fallback recovers the old copy ------------------------


def test_overwrite_never_leaves_out_missing(tmp_path, monkeypatch):
    if atomic._renameat2 is None:
        pytest.skip("renameat2 not available here")
    out = tmp_path / "out"
    out.mkdir()
    (out / "old").write_text("old")
    seen = []
    real = atomic._remove

    def crash_after_swap(p):  # the instant after the swap: OUT must be the new content already
        seen.append(sorted(x.name for x in out.iterdir()))
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic, "_remove", crash_after_swap)
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(out, overwrite=True) as tmp:
            (tmp / "new").write_text("new")
    monkeypatch.setattr(atomic, "_remove", real)
    assert seen == [["new"]] and (out / "new").read_text() == "new"


def test_fallback_overwrite_crash_restores_old_copy_next_run(tmp_path, dead_pid):
    """A crash between the fallback's two renames leaves OUT missing and the old copy aside;
    the next write in that directory puts it back (its process is gone)."""
    out = tmp_path / "out"
    aside = tmp_path / f".out.old-{dead_pid}-{atomic._host_tag()}abcdef"
    aside.mkdir()
    (aside / "old").write_text("old")
    new = tmp_path / f".out.tmp-{dead_pid}-{atomic._host_tag()}abcdef"
    new.mkdir()
    with atomic_path(tmp_path / "unrelated.json") as tmp:
        tmp.write_text("{}")
    assert (out / "old").read_text() == "old"
    assert not aside.exists() and not new.exists()


# ---- item 6: stale temporaries -------------------------------------------------------------------


def test_cleanup_removes_only_dead_processes_temporaries(tmp_path, dead_pid, monkeypatch):
    tag = atomic._host_tag()
    stale_dir = tmp_path / f".step_0000000700.tmp-{dead_pid}-{tag}000001"
    stale_dir.mkdir()
    (stale_dir / "model.safetensors").write_bytes(b"x" * 100)
    stale_file = tmp_path / f".run.json.tmp-{dead_pid}-{tag}000002"
    stale_file.write_text("{")
    live = atomic.tmp_sibling(tmp_path / "mine")  # this process, written now: live
    live.mkdir()
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # a live process...
    reused = tmp_path / f".old.tmp-{helper.pid}-{tag}000003"  # ...whose pid made this before it started
    reused.write_text("")
    real_start = atomic._process_start
    monkeypatch.setattr(atomic, "_process_start", lambda pid: time.time() + 60 if pid == helper.pid else real_start(pid))
    other_host = tmp_path / f".x.tmp-{dead_pid}-ffff{'0' * 6}" if tag != "ffff" else tmp_path / f".x.tmp-{dead_pid}-eeee000000"
    other_host.write_text("")
    users = [tmp_path / ".hidden", tmp_path / f".notes.tmp-{dead_pid}", tmp_path / "data.tmp-1-abcdef01"]
    for p in users:
        p.write_text("")
    try:
        removed = cleanup_stale_tmp(tmp_path)
    finally:
        helper.kill()
        helper.wait()
    assert sorted(removed) == sorted([stale_dir, stale_file, reused])
    started = atomic._process_start(os.getpid())  # /proc gives this process's start: before now
    assert started is None or started <= time.time() + 1
    assert live.exists() and other_host.exists() and all(p.exists() for p in users)


def test_train_cleans_a_killed_writers_checkpoint_temporary(run_copy, dead_pid):
    ckpts = layout.checkpoints_dir(run_copy / "r", "main")
    left = ckpts / f".step_0000000006.tmp-{dead_pid}-{atomic._host_tag()}0a0b0c"
    left.mkdir()
    (left / "model.safetensors").write_bytes(b"\0" * 1000)
    assert main(["train", "--run", str(run_copy / "r"), "--steps", "4", "--no-progress"]) == 0
    assert not left.exists()


# ---- item 4: one writer per branch ---------------------------------------------------------------


def _holder(run: Path, branch: str) -> subprocess.Popen:
    """Another process holding ``branch``'s writer lock (riverbed's own lock code, no torch)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(riverbed.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    code = ("import sys, time; from riverbed.checkpoints.layout import writer_lock; "
            "held = writer_lock(sys.argv[1], sys.argv[2]); held.__enter__(); print('ready', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run), branch], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_second_train_on_a_run_exits_2_naming_the_holder(run_copy, capsys):
    run = run_copy / "r"
    holder = _holder(run, "main")
    try:
        before = tree_bytes(run)
        assert main(["train", "--run", str(run), "--steps", "6", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"pid {holder.pid}" in err and "main" in err
        assert tree_bytes(run) == before  # not even config.toml or run.json was touched
    finally:
        holder.kill()
        holder.wait()
    # The holder died (kill -9): the kernel released its lock, the same command now works.
    assert main(["train", "--run", str(run), "--steps", "6", "--no-progress"]) == 0


def test_same_branch_twice_exits_2_and_keeps_the_first_writers_files(run_copy, capsys):
    run = run_copy / "r"
    name = "linear-from2-len2"
    holder = _holder(run, name)
    try:
        assert main(["branch", str(run), "--from", "2", "--shape", "linear", "--length", "2", "--no-progress"]) == 2
        assert f"pid {holder.pid}" in capsys.readouterr().err
        assert layout.writer_lock_path(run, name).exists()  # the first writer's branch dir is not removed
    finally:
        holder.kill()
        holder.wait()


def test_writer_lock_is_reentrant_in_one_process_and_exclusive_across(tmp_path):
    with writer_lock(tmp_path, "main"):
        with writer_lock(tmp_path, "main"):
            pass
        holder = json.loads(layout.writer_lock_path(tmp_path, "main").read_text())
        assert holder["pid"] == os.getpid() and "host" in holder and "started" in holder
    proc = _holder(tmp_path, "main")
    try:
        with pytest.raises(LockedError, match=f"pid {proc.pid}"):
            with writer_lock(tmp_path, "main"):
                pass
    finally:
        proc.kill()
        proc.wait()


# ---- items 5, 9, 12: validate before anything is created -----------------------------------------


@pytest.mark.parametrize("override, key", [
    ("model.vocab_size=10", "model.vocab_size"),
    ("data.source=missing.txt", "data.source"),
    ("train.seed=99999999999999999999999", "train.seed"),
    ("optim.weight_decay=inf", "optim.weight_decay"),
    ("optim.eps=inf", "optim.eps"),
    ("optim.lr=nan", "optim.lr"),
    ("optim.betas=[0.9, nan]", "optim.betas"),
])
def test_bad_config_exits_2_and_leaves_no_run_folder(tiny_toml, tmp_path, capsys, override, key):
    (tmp_path / "t.toml").write_text(tiny_toml)
    run = tmp_path / "r"
    assert main(["train", str(tmp_path / "t.toml"), "--run", str(run), "--set", override, "--no-progress"]) == 2
    assert key in capsys.readouterr().err
    assert not run.exists()


def test_corrected_command_works_after_a_refused_one(tiny_toml, tmp_path):
    (tmp_path / "t.toml").write_text(tiny_toml)
    run = tmp_path / "r"
    assert main(["train", str(tmp_path / "t.toml"), "--run", str(run), "--set", "model.vocab_size=10", "--no-progress"]) == 2
    assert main(["train", str(tmp_path / "t.toml"), "--run", str(run), "--set", "train.max_steps=2", "--no-progress"]) == 0


def test_non_finite_schedule_value_is_a_config_error(tiny_toml, tmp_path, capsys):
    (tmp_path / "t.toml").write_text(tiny_toml.replace("warmup = 2", "warmup = 2\nmin_ratio = nan"))
    assert main(["train", str(tmp_path / "t.toml"), "--run", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "schedule.min_ratio" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_train_run_that_is_a_file_exits_2(tiny_toml, tmp_path, capsys):
    (tmp_path / "t.toml").write_text(tiny_toml)
    (tmp_path / "afile").write_text("mine")
    assert main(["train", str(tmp_path / "t.toml"), "--run", str(tmp_path / "afile"), "--no-progress"]) == 2
    assert "afile" in capsys.readouterr().err
    assert (tmp_path / "afile").read_text() == "mine"


# ---- item 9: non-finite checkpoints and strict JSON --------------------------------------------


def _poison(ckpt: Path) -> None:
    f = ckpt / layout.MODEL_FILE
    tensors = load_file(str(f))
    name = sorted(tensors)[0]
    tensors[name] = np.full_like(tensors[name], np.nan)
    save_file(tensors, str(f), metadata={"format": "pt"})


def test_resume_and_fork_refuse_a_non_finite_checkpoint(run_copy, capsys):
    run = run_copy / "r"
    newest = layout.checkpoint_dir(run, "main", 4)
    _poison(newest)
    assert main(["train", "--run", str(run), "--steps", "6", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert str(newest) in err and "NaN" in err and str(layout.checkpoint_dir(run, "main", 2)) in err
    assert [r.step for r in layout.list_checkpoints(run, "main")] == [2, 4]  # nothing trained past it
    assert main(["branch", str(run), "--from", "4", "--shape", "linear", "--length", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "NaN" in err and str(layout.checkpoint_dir(run, "main", 2)) in err
    assert "linear-from4-len2" not in json.loads((run / "run.json").read_text())["branches"]


def test_run_json_and_metrics_are_strict_json_with_non_finite_values(run_copy):
    from riverbed.runs import Run
    from riverbed.runs.manifest import Point

    run = Run.open(run_copy / "r")
    run.set_progress("main", Point(4, 512, 1.0, float("nan")))
    run.record_event("main", {"type": "spike", "loss": float("inf")})
    m = strict_loads((run.path / "run.json").read_text())
    prog = m["branches"]["main"]["progress"]
    assert prog["eval_loss"] is None and prog["eval_loss_nonfinite"] == "nan"
    assert m["branches"]["main"]["events"][-1]["loss_nonfinite"] == "inf"
    assert Run.open(run.path).branch("main").progress.eval_loss is None  # readers take null
    for line in layout.metrics_path(run.path, "main").read_text().splitlines():
        strict_loads(line)


def test_output_under_a_plain_file_is_an_error_naming_it(tmp_path):
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(OutputExistsError, match="afile is a file"):
        with atomic_dir(tmp_path / "afile" / "sub" / "out"):
            pass
    assert (tmp_path / "afile").read_text() == "mine"


def test_overwrite_replaces_and_leaves_nothing_beside(tmp_path, rename_mode):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old").write_text("old")
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "new").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
