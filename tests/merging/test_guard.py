"""A merge never writes to, over, inside or above one of its inputs or a run directory (issue 9, items 1, 12)."""

import hashlib
import os

import pytest

import riverbed
from riverbed.checkpoints import layout
from riverbed.cli.main import main
from riverbed.errors import MergeError
from .helpers import random_state, write_dir


def _digest(root):
    """Every file under ``root`` (or the file itself) with its content hash: inputs must stay byte-identical."""
    root = os.fspath(root)
    if os.path.isfile(root):
        return {root: hashlib.sha256(open(root, "rb").read()).hexdigest()}
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            out[p] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def _ckpt(path, seed, step):
    """A riverbed-style checkpoint: weights plus the per-checkpoint files a merge must never lose."""
    write_dir(path, random_state(seed), state={"step": step, "tokens": 10 * step})
    (path / "optimizer.safetensors").write_bytes(b"opt")
    return path


def _refused(capsys, argv, *needles):
    assert main(argv + ["--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err
    return err


@pytest.mark.parametrize("overwrite", [False, True])
def test_out_is_an_input_dir_or_file(tmp_path, capsys, overwrite):
    a, b = _ckpt(tmp_path / "a", 0, 10), _ckpt(tmp_path / "b", 1, 20)
    before = _digest(tmp_path)
    flag = ["--overwrite"] if overwrite else []
    _refused(capsys, ["merge", str(b), str(a), str(b), *flag], f"is the merge input {b}")
    # OUT == an input .safetensors file
    f = b / "model.safetensors"
    _refused(capsys, ["merge", str(f), str(a / "model.safetensors"), str(f), *flag], f"is the merge input {f}")
    assert _digest(tmp_path) == before


@pytest.mark.parametrize("overwrite", [False, True])
def test_out_contains_or_is_inside_an_input(tmp_path, capsys, overwrite):
    a, b = _ckpt(tmp_path / "ck" / "a", 0, 10), _ckpt(tmp_path / "ck" / "b", 1, 20)
    before = _digest(tmp_path)
    flag = ["--overwrite"] if overwrite else []
    _refused(capsys, ["merge", str(tmp_path / "ck"), str(a), str(b), *flag], "contains the merge input")
    _refused(capsys, ["merge", str(b / "merged"), str(a), str(b), *flag], "is inside the merge input", str(b))
    _refused(capsys, ["merge", str(b / "merged.safetensors"), str(a), str(b), *flag], "is inside the merge input")
    assert _digest(tmp_path) == before
    assert not (b / "merged").exists() and not (b / "merged.safetensors").exists()


def test_symlinks_are_resolved_before_comparing(tmp_path, capsys):
    a, b = _ckpt(tmp_path / "a", 0, 10), _ckpt(tmp_path / "b", 1, 20)
    (tmp_path / "latest").symlink_to(b)
    (tmp_path / "alias").symlink_to(tmp_path)  # OUT under a symlinked parent that is really an input's parent
    before = _digest(tmp_path / "b")
    _refused(capsys, ["merge", str(tmp_path / "alias" / "b"), str(a), str(tmp_path / "latest"), "--overwrite"], "is the merge input")
    assert _digest(tmp_path / "b") == before


def test_out_is_or_is_inside_a_run_with_run_flag(tmp_path, capsys):
    run = tmp_path / "runs" / "r"
    for s in (2, 4):
        _ckpt(layout.checkpoint_dir(run, "main", s), s, s)
    (run / layout.MANIFEST).write_text("{}")
    before = _digest(run)
    _refused(capsys, ["merge", str(run), "--run", str(run), "--last", "2", "--every", "2", "--overwrite"], "merge input")
    _refused(capsys, ["merge", str(run / "merged"), "--run", str(run), "--last", "2", "--every", "2"], "run directory")
    # a folder above the run (it contains it) and a run that is not an input at all
    other = tmp_path / "other"
    a, b = _ckpt(other / "a", 0, 1), _ckpt(other / "b", 1, 2)
    _refused(capsys, ["merge", str(tmp_path / "runs"), str(a), str(b), "--overwrite"], "contains the run directory", str(run))
    assert _digest(run) == before


def test_forgotten_out_is_never_destroyed(tmp_path, capsys):
    c20, c30 = _ckpt(tmp_path / "ckpt-20", 0, 20), _ckpt(tmp_path / "ckpt-30", 1, 30)
    before = _digest(tmp_path)
    err = _refused(capsys, ["merge", str(c20), str(c30)], "is a checkpoint", "Did you forget OUT")
    assert "pass --overwrite" not in err  # the old advice that destroyed ckpt-20
    _refused(capsys, ["merge", str(c20), str(c30), "--overwrite"], "even with --overwrite")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep")
    _refused(capsys, ["merge", str(tmp_path / "notes"), str(c20), str(c30), "--overwrite"], "not an earlier merge output")
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep"
    assert _digest(c20) | _digest(c30) == before


def test_overwrite_only_an_earlier_merge_output(tmp_path, capsys):
    a, b = _ckpt(tmp_path / "a", 0, 10), _ckpt(tmp_path / "b", 1, 20)
    out = tmp_path / "merged"
    assert main(["merge", str(out), str(a), str(b), "--no-progress"]) == 0
    err = _refused(capsys, ["merge", str(out), str(a), str(b)], "earlier merge output", "--overwrite")
    assert main(["merge", str(out), str(a), str(b), "--no-progress", "--overwrite", "--method", "ema", "--alpha", "0.5"]) == 0
    # single-file output: replaced only when its header carries a merge recipe
    single = tmp_path / "m.safetensors"
    riverbed.merge(single, [a, b], verbose=False, progress=False)
    riverbed.merge(single, [a, b], "weights", weights=[1, 3], overwrite=True, verbose=False, progress=False)
    with pytest.raises(MergeError, match="is a checkpoint"):
        riverbed.merge(tmp_path / "a" / ".." / "b" / "model.safetensors", [a], overwrite=True, verbose=False, progress=False)
    assert err


def test_dangling_symlink_and_out_under_a_file(tmp_path, capsys):
    a, b = _ckpt(tmp_path / "a", 0, 10), _ckpt(tmp_path / "b", 1, 20)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    _refused(capsys, ["merge", str(tmp_path / "dangling"), str(a), str(b)], "dangling symbolic link")
    assert not (tmp_path / "nowhere").exists()
    (tmp_path / "plain").write_text("x")
    _refused(capsys, ["merge", str(tmp_path / "plain" / "out"), str(a), str(b)], "is a file, not a directory")
    assert (tmp_path / "plain").read_text() == "x"
