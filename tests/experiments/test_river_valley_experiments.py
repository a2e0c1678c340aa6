"""`riverbed experiment lr-sweep` and `multi-budget`: their pure parts (fast) and bounded forms (slow)."""

from __future__ import annotations

import json

import pytest

from riverbed.cli.main import main
from riverbed.errors import ConfigError, OutputExistsError
from riverbed.experiments import lr_sweep, multi_budget
from riverbed.experiments.preamble import MARKER, fresh_output, mean_se


def test_plan_spends_exactly_each_budget_at_equal_compute():
    p = multi_budget.plan((120, 240, 480), 0.1, 12)
    assert p.decays == (12, 24, 48) and p.forks == (108, 204, 396)
    # main up to fork k plus the decays so far = budget k: WSD's k-th model costs what WSD-S's does
    for k, t in enumerate(p.budgets):
        assert p.forks[k] + sum(p.decays[: k + 1]) == t


@pytest.mark.parametrize("budgets", [(100,), (200, 100), (10, 11, 12), (5, 50)])
def test_plan_refuses_budgets_without_room(budgets):
    with pytest.raises(ConfigError, match="--budgets"):
        multi_budget.plan(budgets, 0.1, 10)


def test_mean_se_and_rank_correlation():
    m = mean_se([1.0, 2.0, 3.0])
    assert m["mean"] == 2.0 and m["se"] == pytest.approx(1 / 3**0.5) and m["n"] == 3
    assert mean_se([4.0])["se"] is None
    assert lr_sweep._rank_corr([1, 2, 3], [0.1, 0.2, 0.3]) == 1.0
    assert lr_sweep._rank_corr([1, 2, 3], [0.3, 0.2, 0.1]) == -1.0
    assert lr_sweep._rank_corr([1], [1]) is None


def _run(lr, seed, drop, diverged=False):
    if diverged:
        return {"lr": lr, "seed": seed, "diverged": True, "stable_loss": None}
    return {"lr": lr, "seed": seed, "diverged": False, "stable_loss": 2.0, "constant_loss": 1.9, "decayed_loss": 1.9 - drop,
            "drop": 0.1 + drop, "drop_vs_constant": drop, "optimal_loss": 1.0, "bucket_drop": {"high": drop, "deterministic": 0.0}}


def test_lr_sweep_summary_excludes_diverged_seeds_and_reads_the_trend():
    runs = [_run(1e-3, 0, 0.01), _run(1e-3, 1, 0.03), _run(1e-2, 0, 0.05), _run(1e-2, 1, 0.07), _run(1e-1, 0, 0.0, True)]
    s = lr_sweep.summarize(runs, (1e-3, 1e-2, 1e-1), 1.0)
    lo, hi, dead = s["rows"]
    assert lo["drop_vs_constant"]["mean"] == pytest.approx(0.02) and hi["drop_vs_constant"]["mean"] == pytest.approx(0.06)
    assert dead["diverged"] == 1 and "drop" not in dead
    assert s["drop_increases_with_lr"] is True and s["best_decayed_lr"] == 1e-2
    assert "diverged" in lr_sweep.table(s)
    s2 = lr_sweep.summarize([_run(1e-3, 0, 0.05), _run(1e-2, 0, 0.01)], (1e-3, 1e-2))
    assert s2["drop_increases_with_lr"] is False and s2["drop_rank_correlation"] == -1.0


def test_multi_budget_summary_pairs_differences_by_seed():
    p = multi_budget.plan((20, 40, 80), 0.1, 2)

    def seed(offset):
        return {m: {"points": [{"budget": t, "spent_tokens": t, "own_tokens": t, "loss": 3.0 - k + offset + (0.1 if m == "wsd" else 0.0)}
                               for k, t in enumerate(p.budgets)]} for m in multi_budget.METHODS}

    s = multi_budget.summarize([seed(0.0), seed(0.5)], p)
    assert [m["mean"] for m in s["wsds_minus"]["wsd"]] == pytest.approx([-0.1] * 3)
    assert all(m["se"] == pytest.approx(0.0, abs=1e-12) for m in s["wsds_minus"]["wsd"])  # the seed offset cancels
    assert s["methods"]["wsds"][2]["loss"]["mean"] == pytest.approx(1.25)


def test_fresh_output_refuses_a_folder_that_is_not_an_experiment(tmp_path, capsys):
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("precious")
    with pytest.raises(OutputExistsError, match="not an experiment's output"):
        fresh_output(keep, "lr-sweep")
    assert main(["experiment", "multi-budget", "--quick", "--out", str(keep), "--no-progress"]) == 2
    assert main(["experiment", "lr-sweep", "--quick", "--out", str(keep), "--no-progress"]) == 2
    assert (keep / "notes.txt").read_text() == "precious"
    done = fresh_output(tmp_path / "done", "lr-sweep")
    (done / "results.json").write_text("{}")
    fresh_output(done, "lr-sweep")  # its own earlier output: replaced
    assert sorted(p.name for p in done.iterdir()) == [MARKER]


def test_bad_cli_values_exit_2(tmp_path, capsys):
    out = str(tmp_path / "o")
    assert main(["experiment", "lr-sweep", "--lrs", "1e-2,1e-3", "--out", out]) == 2
    assert main(["experiment", "lr-sweep", "--lrs", "fast", "--out", out]) == 2
    assert main(["experiment", "multi-budget", "--budgets", "10,x", "--out", out]) == 2
    assert main(["experiment", "multi-budget", "--budgets", "100,101", "--out", out]) == 2
    assert "--budgets" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # refused before anything was written


@pytest.mark.slow
def test_lr_sweep_bounded(tmp_path):
    out = tmp_path / "lr"
    assert main(["experiment", "lr-sweep", "--quick", "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert (out / "lr_sweep.png").is_file() and "drop vs constant LR" in (out / "results.md").read_text()
    rows = res["summary"]["rows"]
    assert [r["lr"] for r in rows] == list(lr_sweep.QUICK["lrs"]) and all(not r["diverged"] for r in rows)
    for r in res["runs"]:
        # drop vs constant = constant-LR continuation minus decayed, both measured on the same held-out batches
        assert r["drop_vs_constant"] == pytest.approx(r["constant_loss"] - r["decayed_loss"])
        assert r["decayed_loss"] > res["summary"]["entropy_rate"]


@pytest.mark.slow
def test_multi_budget_bounded_equal_compute(tmp_path):
    out = tmp_path / "mb"
    assert main(["experiment", "multi-budget", "--quick", "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert (out / "multi_budget.png").is_file() and set(res["summary"]) == {"corpus", "bigram"}
    tps = res["geometry"]["batch"] * res["geometry"]["seq"]
    budgets = res["budgets"]
    for data, s in res["summary"].items():
        m = s["methods"]
        for k, t in enumerate(budgets):
            # equal total compute: the three multi-budget methods spent T_k; cosine every budget so far
            assert m["wsd"][k]["spent_tokens"] == m["wsds"][k]["spent_tokens"] == m["cyclic"][k]["spent_tokens"] == t * tps
            assert m["cosine"][k]["spent_tokens"] == sum(budgets[: k + 1]) * tps
            assert m["wsds"][k]["own_tokens"] == m["cosine"][k]["own_tokens"] == t * tps
            assert m["wsd"][k]["own_tokens"] == (res["wsd_forks"][k] + res["decays"][k]) * tps
        # the first budget: WSD's first branch is WSD-S's first period, and cyclic's first cycle is the cosine run
        assert m["wsd"][0]["loss"]["mean"] == pytest.approx(m["wsds"][0]["loss"]["mean"], abs=1e-5)
        assert m["cyclic"][0]["loss"]["mean"] == pytest.approx(m["cosine"][0]["loss"]["mean"], abs=1e-5)


def test_python_entry_points_validate_before_writing(tmp_path):
    with pytest.raises(ConfigError, match="--seeds"):
        lr_sweep.sweep(tmp_path / "a", seeds=0)
    with pytest.raises(ConfigError, match="--lrs"):
        lr_sweep.sweep(tmp_path / "a", lrs=(1e-2, 1e-3))
    with pytest.raises(ConfigError, match="--data"):
        multi_budget.compare(tmp_path / "b", datas=("nope",))
    with pytest.raises(ConfigError, match="--budgets"):
        multi_budget.compare(tmp_path / "b", budgets=(100, 101))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_multi_budget_python_api_one_data(tmp_path):
    res = multi_budget.compare(tmp_path / "mb", budgets=(10, 20, 30), seeds=1, datas=("bigram",), quick=True, progress=False)
    assert set(res["summary"]) == {"bigram"} and res["entropy_rate"]["bigram"] > 0
    assert json.loads((tmp_path / "mb" / "results.json").read_text())["summary"] == json.loads(json.dumps(res["summary"]))
