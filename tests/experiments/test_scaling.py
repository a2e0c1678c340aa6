"""`riverbed experiment scaling`, bounded form (RIVERBED_BOUNDED=1)."""

import json
import math

import pytest

from riverbed.cli.main import main


@pytest.mark.slow
def test_scaling_experiment_bounded(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RIVERBED_BOUNDED", "1")
    out = tmp_path / "scaling"
    assert main(["experiment", "scaling", "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["sizes"]) == {"s", "m", "l"}
    for r in res["sizes"].values():
        assert len(r["tokens"]) == 4 and len(r["merge_rows"]) == 4
        for k in ("data_err", "chin_err", "merge_err"):
            assert math.isfinite(r[k])
        if math.isfinite(r["chin_lo"]) and math.isfinite(r["chin_hi"]):  # the bounded run is too short for sane intervals
            assert r["chin_lo"] <= r["chin_pred"] <= r["chin_hi"]
    n = [r["n_params"] for r in res["sizes"].values()]
    assert n == sorted(n) and len(set(n)) == 3
    c = res["cosine"]
    assert len(c["tokens"]) == 4
    # the tree trains the longest main branch plus short decays; cosine pays every budget
    assert c["tokens_spent"] > res["sizes"]["s"]["tokens_spent"]
    assert (out / "scaling.png").read_bytes()[:4] == b"\x89PNG"
    assert "held-out" in (out / "results.md").read_text()


def test_budgets_and_checkpoint_cadence_golden():
    from riverbed.experiments.scaling import budgets, checkpoint_every

    # 20 % decays: D = k/4, so every budget is a checkpoint (merges sit at the decayed tokens)
    assert budgets((12, 24, 36, 48)) == [15, 30, 45, 60]
    assert checkpoint_every((12, 24, 36, 48)) == 3
    assert checkpoint_every((96, 192, 384, 768)) == 24
    # budgets with no useful common divisor: checkpoints at the forks' cadence only
    assert budgets((50, 100, 200, 400)) == [62, 125, 250, 500]
    assert checkpoint_every((50, 100, 200, 400)) == 50
