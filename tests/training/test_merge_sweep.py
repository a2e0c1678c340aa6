"""`riverbed merge-sweep` / riverbed.merge_sweep: every cell's loss is exactly what `riverbed merge`
of the same recipe followed by `riverbed eval` of its output prints; references and bad input."""

from __future__ import annotations

import json

import pytest

import riverbed
from riverbed.cli.main import main
from riverbed.errors import MergeError

from conftest import TINY_TOML, TWELVE_STEPS


@pytest.fixture(scope="module")
def run12(tmp_path_factory):
    """A 12-step main branch with a checkpoint every 2 steps and a 4-step decay forked at step 8."""
    from riverbed.config import load_config_text
    from riverbed.executors.branches import fork_branches
    from riverbed.runs import Run
    from riverbed.orchestration.drive import train_main

    cfg = load_config_text(TINY_TOML, TWELVE_STEPS)
    run = Run.create(tmp_path_factory.mktemp("sweep") / "run", cfg)
    train_main(cfg, run.path, run, until_step=12, progress=False)
    fork_branches(run, 8, "linear", 4, progress=False)
    return run.path


def _eval_of_merge(tmp_path, capsys, run, method: str, n: int, v: int, extra: list[str]) -> float:
    out = tmp_path / f"{method}-{n}-{v}"
    assert main(["merge", str(out), "--run", str(run), "--last", str(n), "--every", str(v), "--method", method, *extra,
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["eval", str(out), "--run", str(run), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["results"][0]["loss"]


def test_each_cell_equals_riverbed_eval_of_the_merge_written_by_riverbed_merge(run12, tmp_path, capsys):
    res = riverbed.merge_sweep(run12, last=[2, 3], every=[2, 4], methods=["sma", "ema", "wma"], alpha=0.3, progress=False)
    assert res.at == 12 and len(res.cells) == 12 and all(c.eval_loss is not None for c in res.cells)
    cell = {(c.method, c.n, c.every): c for c in res.cells}
    assert cell[("sma", 3, 4)].steps == (4, 8, 12) and cell[("ema", 2, 2)].steps == (10, 12)
    for method, n, v in (("sma", 3, 4), ("ema", 2, 2), ("wma", 3, 2)):
        extra = ["--alpha", "0.3"] if method == "ema" else []
        assert cell[(method, n, v)].eval_loss == _eval_of_merge(tmp_path, capsys, run12, method, n, v, extra)
    # the reference is the last checkpoint's own eval
    assert main(["eval", str(run12 / "branches/main/checkpoints/step_0000000012"), "--json"]) == 0
    assert res.last_loss == json.loads(capsys.readouterr().out)["results"][0]["loss"]
    assert res.best == min(res.cells, key=lambda c: c.eval_loss)
    assert len({c.eval_loss for c in res.cells}) > 3  # the recipes differ


def test_at_a_fork_step_shows_the_decayed_reference_and_unfillable_cells(run12, tmp_path, capsys):
    plot = tmp_path / "sweep.png"
    assert main(["merge-sweep", str(run12), "--at", "8", "--last", "2,4", "--every", "2,4", "--method", "sma,wma",
                 "--plot", str(plot), "--json", "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["at"] == 8 and out["decayed"]["eval_loss"] is not None and out["decayed"]["branch"]
    cells = {(c["method"], c["N"], c["V"]): c for c in out["cells"]}
    assert len(cells) == 8 and cells[("sma", 4, 2)]["steps"] == [2, 4, 6, 8]
    assert cells[("sma", 4, 4)]["eval_loss"] is None  # 4 checkpoints 4 apart need step 0..: not there
    assert out["best"] == min((c for c in out["cells"] if c["eval_loss"] is not None), key=lambda c: c["eval_loss"])
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"
    # the table
    assert main(["merge-sweep", str(run12), "--at", "8", "--last", "2", "--every", "2", "--method", "ema", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "V=2" in text and "decayed" in text and "best: ema N=2 V=2" in text


@pytest.mark.parametrize("argv, message", [
    (["--at", "7"], "no checkpoint at step 7"),
    (["--method", "sma,avg"], "--method must be among"),
    (["--last", "0"], "--last must be positive"),
    (["--last", "20"], "no recipe of the grid fits"),
    (["--plot", "sweep.gif"], "expected a .png, .svg or .pdf"),
    (["--plot", "{run}/sweep.png"], "is inside the input"),
])
def test_bad_input_exits_2_naming_it(run12, capsys, argv, message):
    base = {"--last": "2", "--every": "2"}
    for flag, value in zip(argv[::2], argv[1::2]):
        base[flag] = value.format(run=run12)
    args = [a for kv in base.items() for a in kv]
    assert main(["merge-sweep", str(run12), *args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (run12 / "sweep.png").exists()


def test_not_a_run_is_refused(tmp_path):
    with pytest.raises(Exception, match="run"):
        riverbed.merge_sweep(tmp_path, last=[2], every=[2], progress=False)
    with pytest.raises(MergeError, match="--alpha"):
        riverbed.merge_sweep(tmp_path, last=[2], every=[2], alpha=0.0, progress=False)


def test_keep_merge_rule_of_the_largest_n_and_v_keeps_every_recipe_of_the_grid():
    """`[train] keep = ["merge=Nmax,Vmax"]` retains what a sweep of any N <= Nmax, V <= Vmax at the newest checkpoint picks."""
    from riverbed.checkpoints.keep_rules import parse_keep
    from riverbed.merging.select import pick_spaced
    from riverbed.runs.retention import RetentionPlan

    saved = list(range(10, 2010, 10))
    reasons, pruned = RetentionPlan(parse_keep(["merge=8,200"]), ckpt_every=10).keep(saved)
    kept = sorted(reasons)
    assert pruned == list(range(10, 410, 10))  # the plan deletes what lies before the last N*V = 1600 steps
    for n in (2, 4, 8):
        for v in (50, 100, 200):
            assert pick_spaced(kept, last=n, every=v, key=int) == pick_spaced(saved, last=n, every=v, key=int), (n, v)
