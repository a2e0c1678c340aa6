"""The claims runner: verdict rules that flip, the table's shape on a tiny study, the CLI."""

import json

import pytest

from riverbed.claims import CLAIMS, judge, run_claims, verdict
from riverbed.claims import runner
from riverbed.claims.measure import StudySpec
from riverbed.cli.main import main

TINY = StudySpec(steps=20, decay=10, ckpt=5, merge_n=2, eval_batches=1)


def test_verdict_rule_flips():
    assert verdict([0.03, 0.04, 0.05], 0.0).verdict == "holds"
    assert verdict([-0.03, -0.04, -0.05], 0.0).verdict == "does not hold"
    assert verdict([-0.03, 0.04, 0.0], 0.0).verdict == "inconclusive"
    assert verdict([0.3], 0.0).verdict == "inconclusive"  # one seed: no standard error
    v = verdict([1.0, 2.0, 3.0], 0.5)
    assert v.mean == 2.0 and v.stderr == pytest.approx(1 / 3**0.5) and v.seeds == 3 and "0.5" in v.rule
    with pytest.raises(ValueError, match="finite"):
        verdict([float("nan"), 1.0], 0.0)


def test_fabricated_measurements_give_does_not_hold():
    by_id = {c.id: c for c in CLAIMS}
    # a "merge" that is clearly worse than the last checkpoint
    assert judge(by_id["pma-beats-last"], [-0.05, -0.06, -0.055]).verdict == "does not hold"
    # cosine 0.02 nats better than WSD: beyond the 0.01 "match" tolerance
    assert judge(by_id["wsd-vs-cosine"], [-0.02, -0.021, -0.019]).verdict == "does not hold"
    # within the tolerance it matches
    assert judge(by_id["wsd-vs-cosine"], [-0.002, -0.001, -0.003]).verdict == "holds"


@pytest.mark.slow
def test_run_claims_table_shape_on_a_tiny_study(tmp_path):
    """Real training (~10 s): a 20-step study, two seeds."""
    results = run_claims(TINY, seeds=2, workdir=tmp_path)
    assert [r.claim for r in results] == [c.claim for c in CLAIMS]
    for r in results:
        assert r.seeds == 2 and len(r.values) == 2 and r.stderr is not None
        assert r.verdict in ("holds", "does not hold", "inconclusive") and r.rule
        assert set(r.to_json()) >= {"claim", "source", "mean", "stderr", "seeds", "verdict", "rule"}
    assert list(tmp_path.iterdir()) == []  # the study's runs were temporary


def test_claims_cli_json_and_table(monkeypatch, capsys):
    """The CLI's plumbing with fabricated per-seed measurements (the study itself: the slow tests)."""
    import riverbed.claims.measure as measure

    made = {c.id: [0.02, 0.03] for c in CLAIMS}
    made["pma-beats-last"] = [-0.05, -0.04]  # must come out "does not hold"
    monkeypatch.setattr(measure, "measure_seed", lambda spec, seed, root, data: {k: v[seed] for k, v in made.items()})
    assert main(["claims", "--quick", "--seeds", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["claims"]) == len(CLAIMS) and out["not_measured"]
    assert {"claim", "source", "mean", "stderr", "seeds", "verdict", "rule"} <= set(out["claims"][0])
    first = out["claims"][0]
    assert first["verdict"] == "does not hold" and first["mean"] == pytest.approx(-0.045) and first["seeds"] == 2
    assert main(["claims", "--seeds", "2"]) == 0
    text = capsys.readouterr().out
    assert "does not hold" in text and "not measured here" in text
    assert main(["claims", "--quick", "--seeds", "0"]) == 2


@pytest.mark.slow
def test_claims_quick_cli_table(capsys):
    """The CI-size study (bounded: 2 seeds), printed as the table."""
    assert main(["claims", "--quick", "--seeds", "2"]) == 0
    text = capsys.readouterr().out
    assert "seed claims at small scale" in text and "not measured here" in text
