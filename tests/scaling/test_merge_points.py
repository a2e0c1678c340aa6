"""Decay-free points from a tiny real run: main trained 40 steps, three decay branches."""

import json

import pytest

from riverbed.cli.main import main
from riverbed.scaling.merge_points import merge_points
from tests.runs.conftest import tiny_config


@pytest.fixture(scope="module")
def tiny_tree(tmp_path_factory):
    from riverbed.data import load_dataset
    from riverbed.runs import Run
    from riverbed import fork_branches
    from riverbed.orchestration.drive import train_main

    cfg = tiny_config()
    run = Run.create(tmp_path_factory.mktemp("tree") / "run", cfg)
    train_main(cfg, run.path, run, until_step=40, progress=False, data=load_dataset(cfg.data))
    fork_branches(run, [10, 20, 30], "linear", 10, progress=False)
    return run.path


def test_merge_rows_against_decayed_branches(tiny_tree):
    study = merge_points(tiny_tree, last=2)
    assert [r.merge_steps for r in study.rows] == [(10, 20), (20, 30), (30, 40)]
    state = json.loads((tiny_tree / "branches/main/checkpoints/step_0000000020/state.json").read_text())
    r0 = study.rows[0]
    # the newest merged checkpoint alone is evaluated exactly as the trainer evaluated it
    assert r0.last_loss == pytest.approx(state["metrics"]["eval_loss"], rel=1e-5)
    assert r0.merge_tokens == state["tokens"] == r0.decayed_tokens
    assert r0.gap == pytest.approx(r0.merge_loss - r0.decayed_loss)
    assert study.merged.kinds == ("merge",) * 3 and study.merged.labels[0] == "run/merge@20"
    one = merge_points(tiny_tree, last=1)
    assert one.rows[1].merge_loss == pytest.approx(one.rows[1].last_loss, rel=1e-6)


def test_cli_points_merge(tiny_tree, capsys):
    assert main(["scaling", "fit", str(tiny_tree), "--points", "merge", "--merge-last", "2", "--law", "data", "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out
    assert "PMA merges of main checkpoints vs decayed branches" in out
    assert "law from merges vs law from the decay branches" in out
    assert main(["scaling", "fit", str(tiny_tree), "--points", "merge", "--law", "data", "--bootstrap", "0", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["merge_rows"]) == 3 and set(doc["decay_fit_params"]) == {"E", "B", "beta"}
    assert main(["scaling", "fit", str(tiny_tree), "--points", "merge", "--law", "chinchilla", "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err
    assert "3 distinct points cannot determine 5 parameters" in err and "fit --law data" in err
