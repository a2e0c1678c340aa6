"""The one output check of every verb: no output (-o, --plot, --out, a merge's OUT, --report) may be a
file of a run tree, lie inside a checkpoint, or touch an input."""

from __future__ import annotations

import pytest

from riverbed.checkpoints import layout
from riverbed.checkpoints.outputs import check_output
from riverbed.cli.main import main
from riverbed.errors import RiverbedError
from runs.helpers import make_tree


def _tree_bytes(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def run(tmp_path):
    return make_tree(tmp_path / "r").path


def _targets(run):
    ckpt = layout.checkpoint_dir(run, "main", 100)
    return {
        "manifest": run / layout.MANIFEST,
        "config": run / layout.CONFIG,
        "lock": run / layout.RUN_LOCK,
        "state": ckpt / layout.STATE_FILE,
        "in-checkpoint": ckpt / "x.png",
        "in-branches": run / layout.BRANCHES / "plot.png",
    }


@pytest.mark.parametrize("target", ["manifest", "config", "lock", "state", "in-checkpoint", "in-branches"])
@pytest.mark.parametrize("verb", ["plan -o", "plan --plot", "schedule --plot", "ls --plot", "predict -o",
                                  "report --out", "claims --report", "merge"])
def test_no_verb_writes_over_a_run_or_a_checkpoint(run, capsys, verb, target):
    out = str(_targets(run)[target])
    argv = {
        "plan -o": ["plan", "--budgets", "100,200", "-o", out],
        "plan --plot": ["plan", "--budgets", "100,200", "--plot", out],
        "schedule --plot": ["schedule", "plot", "--type", "constant", "--until", "10", "--plot", out],
        "ls --plot": ["ls", str(run), "--plot", out],
        "predict -o": ["predict", "fit", str(run), "-o", out],
        "report --out": ["report", str(run), "--out", out],
        "claims --report": ["claims", "--report", out],
        "merge": ["merge", out, str(layout.checkpoint_dir(run, "main", 200)),
                  str(layout.checkpoint_dir(run, "main", 300)), "--no-progress"],
    }[verb]
    before = _tree_bytes(run)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip()
    assert _tree_bytes(run) == before


def test_an_output_beside_a_run_is_allowed_and_the_run_dir_itself_is_not(run, tmp_path):
    assert check_output(run / "report.html", flag="--out") == (run / "report.html").resolve()
    assert check_output(tmp_path / "elsewhere.png", flag="--plot", inputs=[run])
    for bad in (run, run / ".run.json.tmp-1-x", run / layout.JOBS / "slurm" / "x"):
        with pytest.raises(RiverbedError, match="run directory"):
            check_output(bad, flag="-o", directory=True)
    with pytest.raises(RiverbedError, match="run directory"):  # a merge never writes into a run at all
        check_output(run / "merged", flag="output", directory=True, inside_run=False)


def test_inputs_symlinks_and_parents(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("x")
    (tmp_path / "link").symlink_to(src)
    for bad, why in ((src, "is the input"), (tmp_path / "link", "symbolic link"), (tmp_path, "is a directory"),
                     (src / "x.json", "is a file, not a directory")):
        with pytest.raises(RiverbedError, match=why):
            check_output(bad, flag="-o", inputs=[src])
    with pytest.raises(RiverbedError, match="contains the input"):
        check_output(tmp_path, flag="--out", inputs=[src], directory=True)
    with pytest.raises(RiverbedError, match=r"expected a \.png"):
        check_output(tmp_path / "x.txt", flag="--plot", suffixes=(".png",))
