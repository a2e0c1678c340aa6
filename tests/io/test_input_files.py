"""Inputs that are not regular files (/dev/zero, a FIFO, a directory) are refused with the true reason,
at once (no read without bound), and JSON/TOML/CSV inputs are read with a bound."""

from __future__ import annotations

import os
import struct
import threading

import pytest

from riverbed.io import input_files
from riverbed.io.input_files import read_text
from riverbed.cli.main import main
from riverbed.errors import CheckpointError, ConfigError


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    yield path
    # Unblock any reader a regression left waiting, so the test fails instead of hanging.
    threading.Thread(target=lambda: open(path, "wb").close(), daemon=True).start()


def test_read_text_refuses_what_is_not_a_regular_file(tmp_path, fifo):
    for path, why in (("/dev/zero", "character device"), (fifo, "FIFO"), (tmp_path, "directory"),
                      (tmp_path / "none", "not found")):
        with pytest.raises(ConfigError, match=why):
            read_text(path, "--plan")


def test_read_text_is_bounded_and_names_bad_bytes(tmp_path, monkeypatch):
    big = tmp_path / "big.json"
    big.write_bytes(b"[" + b" " * 5000 + b"]")
    monkeypatch.setattr(input_files, "MAX_TEXT_BYTES", 1000)
    with pytest.raises(ConfigError, match="larger than"):
        read_text(big, "--plan", limit=1000)
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"a = '\xff'")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_text(bad, "config file")


@pytest.mark.parametrize("make_argv", [
    lambda p, q: ["branch", str(p), "--plan", "/dev/zero"],
    lambda p, q: ["branch", str(p), "--plan", str(q)],
    lambda p, q: ["train", "/dev/zero"],
    lambda p, q: ["scaling", "fit", str(q)],
    lambda p, q: ["predict", "fit", "/dev/zero"],
    lambda p, q: ["merge", str(p.parent / "m"), "--recipe", "/dev/zero"],
])
def test_cli_refuses_special_files_at_once_with_the_reason(tmp_path, fifo, capsys, make_argv):
    from runs.helpers import make_tree

    run = make_tree(tmp_path / "r").path
    assert main(make_argv(run, fifo)) == 2
    err = capsys.readouterr().err
    assert ("character device" in err or "FIFO" in err) and "Traceback" not in err, err


def test_keep_plan_and_data_source_special_files(tmp_path, tiny_toml, capsys):
    (tmp_path / "t.toml").write_text(tiny_toml)
    for setting, why in (('train.keep=["plan=/dev/zero"]', "character device"),
                         ("data.source=/dev/zero", "character device")):
        assert main(["train", str(tmp_path / "t.toml"), "--run", str(tmp_path / "r"), "--set", setting,
                     "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert why in err and "Traceback" not in err, err
        assert not (tmp_path / "r").exists()


def test_a_100mb_safetensors_header_names_the_cap(tmp_path):
    from riverbed.checkpoints.formats import read_header

    f = tmp_path / "model.safetensors"
    f.write_bytes(struct.pack("<Q", 100_000_001) + b"{}" + b" " * 100)
    with pytest.raises(CheckpointError, match="larger than the 100000000-byte limit"):
        read_header(f)
