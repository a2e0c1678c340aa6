from pathlib import Path

import pytest

from riverbed.io.atomic import atomic_dir, atomic_path, cleanup_stale_tmp, write_json


def test_atomic_dir_renames_on_success(tmp_path: Path):
    target = tmp_path / "ckpt"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("x")
        assert not target.exists()
    assert (target / "a.txt").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_atomic_dir_leaves_nothing_on_failure(tmp_path: Path):
    target = tmp_path / "ckpt"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text("x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_refuses_existing_unless_overwrite(tmp_path: Path):
    target = tmp_path / "ckpt"
    target.mkdir()
    (target / "old").write_text("old")
    with pytest.raises(FileExistsError):
        with atomic_dir(target):
            pass
    assert (target / "old").exists()
    with atomic_dir(target, overwrite=True) as tmp:
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new"]


def test_atomic_path_keeps_old_file_on_failure(tmp_path: Path):
    target = tmp_path / "m.json"
    write_json(target, {"a": 1})
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise ValueError
    assert target.read_text().strip().startswith("{")
    assert len(list(tmp_path.iterdir())) == 1


def test_cleanup_stale_tmp(tmp_path: Path, dead_pid: int):
    (tmp_path / f".x.tmp-{dead_pid}-abcd0123").mkdir()
    (tmp_path / f".y.tmp-{dead_pid}-abcd0123").write_text("")
    (tmp_path / "keep").write_text("")
    assert len(cleanup_stale_tmp(tmp_path)) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["keep"]
