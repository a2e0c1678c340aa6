"""An experiment replaces only its own output folder: a foreign non-empty --out is refused, untouched."""

from __future__ import annotations

import argparse
import json

import pytest

from riverbed.cli.main import main
from riverbed.errors import OutputExistsError
from riverbed.experiments.preamble import MARKER, add_arguments, fresh_output, options, start


def test_fresh_output_marks_and_replaces_its_own(tmp_path):
    out = fresh_output(tmp_path / "spike", "spike")
    assert json.loads((out / MARKER).read_text()) == {"experiment": "spike"}
    (out / "old.txt").write_text("x")
    fresh_output(out, "spike")
    assert sorted(p.name for p in out.iterdir()) == [MARKER]  # the previous output is gone


def test_empty_folder_is_taken(tmp_path):
    (tmp_path / "e").mkdir()
    assert (fresh_output(tmp_path / "e", "bigram") / MARKER).is_file()


@pytest.mark.parametrize("marker", [None, {"experiment": "scaling"}, "not json"])
def test_foreign_folder_is_refused_untouched(tmp_path, marker):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    if marker is not None:
        (out / MARKER).write_text(json.dumps(marker) if isinstance(marker, dict) else marker)
    with pytest.raises(OutputExistsError, match="refusing to delete"):
        fresh_output(out, "spike")
    assert (out / "thesis.tex").read_text() == "years of work"


def test_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputExistsError, match="not a folder"):
        fresh_output(tmp_path / "f", "spike")


def test_cli_refuses_with_exit_2(tmp_path, capsys):
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    assert main(["experiment", "scaling", "--out", str(out), "--no-progress"]) == 2
    assert "not an experiment's output" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_options_and_start(tmp_path, monkeypatch):
    p = argparse.ArgumentParser()
    add_arguments(p, "bigram", seeds=3, quick=True)
    monkeypatch.delenv("RIVERBED_BOUNDED", raising=False)
    assert options(p.parse_args([])).seeds == 3
    assert options(p.parse_args(["--quick"])).seeds == 1
    assert options(p.parse_args(["--seeds", "5", "--quick"])).seeds == 5
    monkeypatch.setenv("RIVERBED_BOUNDED", "1")
    st = start(p.parse_args(["--out", str(tmp_path / "o"), "--no-progress"]), "bigram")
    assert (st.bounded, st.seeds, st.progress, st.out) == (True, 1, False, tmp_path / "o")
