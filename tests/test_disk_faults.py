"""A read-only run and a full disk: exit 2 with a message, nothing half-visible, nothing of the user's lost.

The read-only and full-disk cases run on real mounts where the kernel allows an unprivileged user
namespace (``unshare -rm``: a read-only bind mount of the run, a 1-4 MB tmpfs); elsewhere they are
skipped and the fault-injected tests below them still run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from riverbed.checkpoints import layout
from riverbed.cli.main import main

SRC = str(Path(__file__).parents[1] / "src")

# Runs riverbed verbs (or, for argv starting with "!", a command) in one process and prints [{argv, rc, out, err}] as JSON.
_VERBS = r"""
import contextlib, io, json, sys
from riverbed.cli.main import main
res = []
for argv in json.loads(sys.argv[1]):
    if argv[0] == "!":  # a shell step between verbs (fill or free the disk)
        import subprocess
        p = subprocess.run(argv[1:], capture_output=True, text=True)
        res.append({"argv": argv, "rc": p.returncode, "out": p.stdout, "err": p.stderr})
        continue
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except BaseException as exc:  # a crash is reported, not hidden
            import traceback
            traceback.print_exc(file=err)
            rc = "crash"
    res.append({"argv": argv, "rc": rc, "out": out.getvalue(), "err": err.getvalue()})
print(json.dumps(res))
"""


def _namespace_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


needs_namespace = pytest.mark.skipif(not _namespace_works(), reason="no unprivileged user namespace (unshare -rm) here")


def verbs_in_namespace(setup: str, verbs: list[list[str]]) -> list[dict]:
    """Run ``verbs`` through riverbed's CLI in a private mount namespace after the shell ``setup``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, *sys.path]), "MPLBACKEND": "Agg"}
    cmd = ["unshare", "-rm", "sh", "-c", f'{setup} && exec "$0" -c "$1" "$2"', sys.executable, _VERBS, json.dumps(verbs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def tree_state(root: Path) -> dict[str, bytes | None]:
    """Every entry under ``root`` (hidden ones too) with a file's bytes: what 'nothing changed' means."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for p in sorted(root.rglob("*"))}


def _needs_reconcile(run: Path, dead_pid: int) -> None:
    """Mark main running by a process that is gone (the state after a lost node)."""
    path = run / layout.MANIFEST
    m = json.loads(path.read_text())
    m["branches"]["main"].update(status="running", pid=dead_pid, host=os.uname().nodename, progress=None)
    path.write_text(json.dumps(m))


# ---- item 7: a read-only run ---------------------------------------------------------------------------


def test_read_verbs_never_write_to_a_run_that_needs_reconciling(run_copy, dead_pid, tmp_path, capsys):
    run = run_copy / "r"
    _needs_reconcile(run, dead_pid)
    before = tree_state(run)
    assert main(["ls", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["manifest"]["branches"]["main"]["status"] == "stopped"  # in memory
    assert main(["ls", str(run)]) == 0
    assert main(["report", str(run), "--out", str(tmp_path / "rep.html"), "--no-fit"]) == 0
    main(["predict", "check", str(run)])  # too few branches to check: exit 2, but still reads only
    assert tree_state(run) == before


@needs_namespace
def test_a_read_only_run_reads_and_refuses_writes_naming_the_path(run_copy, dead_pid, tmp_path):
    run = run_copy / "r"
    _needs_reconcile(run, dead_pid)
    before = tree_state(run)
    out = tmp_path / "rep.html"
    reads = [["ls", str(run)], ["ls", str(run), "--json"], ["report", str(run), "--out", str(out), "--no-fit"]]
    writes = [["rm", str(run), "main"], ["branch", str(run), "--from", "2", "--shape", "linear", "--length", "2",
                                         "--no-progress"],
              ["train", str(run_copy / "t.toml"), "--run", str(run), "--no-progress"]]
    res = verbs_in_namespace(f'mount --bind "{run}" "{run}" && mount -o remount,bind,ro "{run}" "{run}"',
                             [*reads, *writes, ["predict", "check", str(run)]])
    for r in res:
        assert "Traceback" not in r["err"], r
    assert [r["rc"] for r in res[:3]] == [0, 0, 0], res[:3]
    assert '"status": "stopped"' in res[1]["out"] and out.is_file()
    for r in res[3:6]:
        assert r["rc"] == 2 and "Read-only file system" in r["err"] and str(run) in r["err"], r
    assert res[6]["rc"] in (0, 2) and "Read-only" not in res[6]["err"]
    assert tree_state(run) == before


# ---- item 6: a full disk ---------------------------------------------------------------------------------


def _checkpoints(run: Path, branch: str = "main") -> list[str]:
    return sorted(p.name for p in (run / layout.BRANCHES / branch / layout.CHECKPOINTS).iterdir())


@pytest.mark.slow  # ~20 s: three trainings
@needs_namespace
def test_train_branch_and_merge_on_a_full_disk_exit_2_and_resume_to_the_same_weights(run_copy, tmp_path):
    """A real 64 MB tmpfs, filled up to a few hundred KB (less than one checkpoint); freed afterwards."""
    ref = run_copy / "r"
    disk = tmp_path / "disk"
    disk.mkdir()
    run, toml = disk / "r", disk / "t.toml"
    ckpt = lambda r, s: str(layout.checkpoint_dir(r, "main", s))  # noqa: E731
    six = ["--set", "train.max_steps=6", "--no-progress"]
    fill = ["!", "sh", "-c", f'dd if=/dev/zero of="{disk}/filler" bs=64k 2>/dev/null; truncate -s -300K "{disk}/filler"']
    verbs = [fill,
             ["train", str(toml), "--run", str(run), *six],
             ["branch", str(run), "--from", "2", "--shape", "linear", "--length", "2", "--no-progress"],
             ["merge", str(disk / "m"), ckpt(run, 2), ckpt(run, 4), "--no-progress"],
             ["!", "sh", "-c", f'ls -A "{run}/branches/main/checkpoints" "{disk}"'],
             ["!", "rm", str(disk / "filler")],
             ["train", str(toml), "--run", str(run), *six],
             ["branch", str(run), "--from", "2", "--shape", "linear", "--length", "2", "--no-progress"],
             ["merge", str(disk / "m"), ckpt(run, 2), ckpt(run, 4), "--no-progress"],
             ["!", "cp", "-a", str(run), str(tmp_path / "resumed")]]
    setup = f'mount -t tmpfs -o size=64m tmpfs "{disk}" && cp -a "{ref}" "{run}" && cp "{run_copy / "t.toml"}" "{toml}"'
    res = verbs_in_namespace(setup, verbs)
    for r in res:
        assert "Traceback" not in r["err"], r
    for r in res[1:4]:
        assert r["rc"] == 2 and ("no space left" in r["err"].lower() or "not enough free disk space" in r["err"]), r
    listing = res[4]["out"].split()
    assert all(".tmp-" not in n for n in listing) and "m" not in listing, listing  # nothing half-visible
    assert [r["rc"] for r in res[6:]] == [0, 0, 0, 0], res[6:]
    # the run resumed after the full disk equals one that never met it
    assert main(["train", str(run_copy / "t.toml"), "--run", str(ref), *six]) == 0
    got, want = Path(ckpt(tmp_path / "resumed", 6)), Path(ckpt(ref, 6))
    assert (got / layout.MODEL_FILE).read_bytes() == (want / layout.MODEL_FILE).read_bytes()


def test_a_full_disk_while_saving_a_checkpoint_exits_2_and_the_run_resumes(run_copy, monkeypatch, capsys):
    """Fault-injected (no mount needed): safetensors reports the device full mid-checkpoint."""
    import riverbed.checkpoints.state as state

    class SafetensorError(Exception):  # what safetensors raises, by name
        pass

    real = state.save_file

    def full(*a, **k):
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })')

    run = run_copy / "r"
    monkeypatch.setattr(state, "save_file", full)
    argv = ["train", str(run_copy / "t.toml"), "--run", str(run), "--set", "train.max_steps=6", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no space left" in err and "Traceback" not in err
    assert _checkpoints(run) == ["step_0000000002", "step_0000000004"]  # nothing half-visible
    monkeypatch.setattr(state, "save_file", real)
    assert main(argv) == 0 and _checkpoints(run)[-1] == "step_0000000006"


def test_merge_free_space_estimate_counts_the_files_beside_the_shards(tmp_path, monkeypatch, capsys):
    import numpy as np
    from safetensors.numpy import save_file

    import riverbed.merging.merge_plan as merge_plan

    ins = []
    for i in range(2):
        d = tmp_path / f"c{i}"
        d.mkdir()
        save_file({"w": np.full((8, 8), float(i), dtype=np.float32)}, str(d / layout.MODEL_FILE))
        (d / "config.json").write_text(json.dumps({"pad": "x" * 200_000}))
        ins.append(str(d))
    real = shutil.disk_usage
    shards = 8 * 8 * 4 + 4096  # the shard bytes and a header, rounded generously: far less than config.json
    monkeypatch.setattr(merge_plan.shutil, "disk_usage", lambda p: real(p)._replace(free=shards + 8192))
    assert main(["merge", str(tmp_path / "m"), *ins, "--no-progress"]) == 2
    assert "not enough free disk space" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
