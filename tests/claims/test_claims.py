"""The claims runner: verdict rules that flip, the catalog and job plan, the CLI on fabricated results."""

import itertools
import json

import numpy as np
import pytest

from riverbed.claims import CLAIMS, Job, by_id, judge, judge_jobs, plan_jobs, run_claims, run_job, verdict
from riverbed.claims import runner, studies
from riverbed.claims.studies import epoch
from riverbed.cli.main import main
from riverbed.errors import ConfigError, RunError


def test_verdict_rule_flips():
    assert verdict([0.03, 0.04, 0.05], 0.0).verdict == "holds"
    assert verdict([-0.03, -0.04, -0.05], 0.0).verdict == "does not hold"
    assert verdict([-0.03, 0.04, 0.0], 0.0).verdict == "inconclusive"
    assert verdict([0.3], 0.0).verdict == "inconclusive"  # one seed: no standard error
    v = verdict([1.0, 2.0, 3.0], 0.5)
    assert v.mean == 2.0 and v.stderr == pytest.approx(1 / 3**0.5) and v.seeds == 3 and "0.5" in v.rule
    with pytest.raises(ValueError, match="finite"):
        verdict([float("nan"), 1.0], 0.0)


def test_smaller_holds_and_deterministic_rules():
    # an error that must stay below its tolerance
    assert verdict([0.2, 0.3, 0.25], 0.5, larger_holds=False).verdict == "holds"
    assert verdict([0.9, 1.0, 1.1], 0.5, larger_holds=False).verdict == "does not hold"
    assert verdict([0.4, 0.6, 0.5], 0.5, larger_holds=False).verdict == "inconclusive"
    assert "mean + 2 stderr < 0.5" in verdict([0.2, 0.3], 0.5, larger_holds=False).rule
    d = verdict([0.002], 0.01, larger_holds=False, deterministic=True)
    assert (d.verdict, d.stderr, d.seeds) == ("holds", None, 1) and d.rule.startswith("deterministic")
    assert verdict([0.02], 0.01, larger_holds=False, deterministic=True).verdict == "does not hold"
    with pytest.raises(ValueError, match="deterministic"):
        verdict([0.02, 0.03], 0.01, deterministic=True)


def test_fabricated_measurements_give_does_not_hold():
    # a "merge" that is clearly worse than the last checkpoint
    assert judge(by_id("pma-beats-last"), [-0.05, -0.06, -0.055]).verdict == "does not hold"
    # cosine 0.02 nats better than WSD: beyond the 0.01 "match" tolerance; within it, it matches
    assert judge(by_id("wsd-vs-cosine"), [-0.02, -0.021, -0.019]).verdict == "does not hold"
    assert judge(by_id("wsd-vs-cosine"), [-0.002, -0.001, -0.003]).verdict == "holds"
    # a refit 5 % off Epoch's parameters; an MPL missing by 1 %; a PMA-init arm 0.3 nats off the reference
    assert judge(by_id("epoch-refit"), [0.05]).verdict == "does not hold"
    assert judge(by_id("epoch-refit"), [2e-4]).verdict == "holds"
    assert judge(by_id("mpl-accurate"), [0.9, 1.0, 1.1]).verdict == "does not hold"
    assert judge(by_id("pma-init-passes-spike"), [0.3, 0.35, 0.32]).verdict == "does not hold"
    assert judge(by_id("pma-init-passes-spike"), [0.01, 0.0, 0.02]).verdict == "holds"


def test_catalog_and_job_plan():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids)) and len(CLAIMS) >= 18
    assert {c.study for c in CLAIMS} == set(studies.STUDIES)
    jobs = plan_jobs(None, "quick", 3)
    assert len(jobs) == 3 * (len(studies.STUDIES) - 1) + 1  # the deterministic Epoch refit runs once
    assert [j for j in jobs if j.study == "epoch"] == [Job("epoch", "quick", 0)]
    assert plan_jobs(["wsds-vs-wsd", "epoch"], "tiny", 2) == [Job("multibudget", "tiny", 0), Job("epoch", "tiny", 0),
                                                               Job("multibudget", "tiny", 1)]
    assert [c.id for c in runner.select(["multibudget"])] == ["wsds-vs-wsd", "wsds-vs-cyclic"]
    with pytest.raises(ConfigError, match="unknown claim or study"):
        plan_jobs(["nope"], "quick", 2)
    with pytest.raises(ConfigError, match="seeds"):
        plan_jobs(None, "quick", 0)
    with pytest.raises(ConfigError, match="size"):
        plan_jobs(None, "huge", 1)
    assert json.loads(json.dumps(Job("wsd", "tiny", 1).to_json())) == {"study": "wsd", "size": "tiny", "seed": 1}


def test_judge_jobs_orders_seeds_and_needs_results():
    results = [{"job": {"study": "multibudget", "size": "tiny", "seed": s}, "values": {"wsds-vs-wsd": v, "wsds-vs-cyclic": v}}
               for s, v in ((1, 0.02), (0, 0.01))]
    (r,) = judge_jobs([by_id("wsds-vs-wsd")], results)
    assert r.values == (0.01, 0.02) and r.seeds == 2
    with pytest.raises(ConfigError, match="no result"):
        judge_jobs([by_id("epoch-refit")], results)


def test_run_job_refuses_unknown_studies_and_non_finite_numbers(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="unknown"):
        run_job({"study": "nope", "size": "tiny", "seed": 0})
    monkeypatch.setattr(studies, "get", lambda name: lambda size, seed, root: {"values": {"wsds-vs-wsd": float("nan")}})
    with pytest.raises(RunError, match="non-finite"):
        run_job(Job("multibudget", "tiny", 0), tmp_path)
    assert list(tmp_path.iterdir()) == []  # its scratch directory is gone


def test_epoch_refit_on_a_subgrid():
    """The Epoch study's refit (the CLI uses the full grid; 48 interior starts find the same optimum)."""
    grid = np.array([[a, b, e, al, be] for al, be, e, a, b in
                     itertools.product((0.5, 1.0), (0.5, 1.0), (-0.5, 0.0, 0.5), (5.0, 10.0), (5.0, 10.0))])
    out = epoch.refit(grid)
    assert out["points"] == 240
    assert max(out["rel_errors"].values()) < 1e-3
    assert judge(by_id("epoch-refit"), [max(out["rel_errors"].values())]).verdict == "holds"


def _fabricated(made):
    """run_job replacement: each claim's value for the job's seed from ``made``."""
    def run_job(job, workdir=None):
        vals = {c.id: made[c.id][job.seed] for c in CLAIMS if c.study == job.study}
        return {"job": job.to_json(), "values": vals, "extras": {"x": float("nan")}, "seconds": 0.5}
    return run_job


def test_claims_cli_json_table_and_report(monkeypatch, capsys, tmp_path):
    """The CLI's plumbing with fabricated per-seed measurements (the studies themselves: the slow tests)."""
    made = {c.id: [0.02, 0.03] for c in CLAIMS}
    made["pma-beats-last"] = [-0.05, -0.04]  # must come out "does not hold"
    made["epoch-refit"] = [2e-4]
    monkeypatch.setattr(runner, "run_job", _fabricated(made))
    assert main(["claims", "--quick", "--seeds", "2", "--json", "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["claims"]) == len(CLAIMS) and out["size"] == "quick"
    assert all({"claim", "source", "mean", "stderr", "seeds", "verdict", "rule"} <= set(c) for c in out["claims"])
    first = out["claims"][0]
    assert first["verdict"] == "does not hold" and first["mean"] == pytest.approx(-0.045) and first["seeds"] == 2
    ep = next(c for c in out["claims"] if c["id"] == "epoch-refit")
    assert (ep["verdict"], ep["seeds"], ep["stderr"]) == ("holds", 1, None)
    assert out["jobs"][0]["extras"] == {"x": None}  # strict JSON
    page = tmp_path / "claims.html"
    assert main(["claims", "--seeds", "2", "--only", "wsd,epoch-refit", "--report", str(page)]) == 0
    text = capsys.readouterr().out
    assert "does not hold" in text and "Epoch" in text and "WSD-S" not in text
    assert main(["claims", "--seeds", "2", "--only", "epoch", "--markdown"]) == 0
    md = capsys.readouterr().out
    assert "| Epoch AI's Chinchilla approach-3 refit is reproduced |" in md and "**holds**" in md and "< 0.01" in md
    html = page.read_text()
    assert "does not hold" in html and "default-src 'none'" in html and "Merging stable-phase" in html


def test_claims_cli_bad_input_exits_2_before_training(monkeypatch, tmp_path, capsys):
    def boom(*a, **k):
        raise AssertionError("trained despite a bad argument")
    monkeypatch.setattr(runner, "run_job", boom)
    assert main(["claims", "--jobs", "0"]) == 2
    assert main(["claims", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == len(CLAIMS) and listed[0].split()[:2] == ["pma-beats-last", "wsd"]
    assert main(["claims", "--quick", "--seeds", "0"]) == 2
    assert main(["claims", "--only", "bogus"]) == 2
    assert main(["claims", "--report", str(tmp_path / "x.png")]) == 2
    assert main(["claims", "--quick", "--size", "full"]) == 2
    assert main(["claims", "--json", "--markdown"]) == 2
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_run_claims_table_shape_on_the_tiny_size(tmp_path):
    """Real training of every study at the tiny size (~40 s), two seeds, in two worker processes."""
    verdicts, results = run_claims("tiny", seeds=2, workdir=tmp_path, processes=2)
    assert [r["job"] for r in results] == [j.to_json() for j in plan_jobs(None, "tiny", 2)]  # job order kept
    assert [r.id for r in verdicts] == [c.id for c in CLAIMS]
    for r in verdicts:
        assert r.verdict in ("holds", "does not hold", "inconclusive") and r.rule
        assert r.seeds == (1 if by_id(r.id).deterministic else 2) and len(r.values) == r.seeds
        assert set(r.to_json()) >= {"claim", "source", "mean", "stderr", "seeds", "verdict", "rule"}
    json.dumps(results, allow_nan=False)  # plain JSON-able job results
    assert list(tmp_path.iterdir()) == []  # the studies' runs were temporary


@pytest.mark.slow
def test_claims_quick_cli_table(capsys):
    """The CI-size run of every claim (under RIVERBED_BOUNDED=1: 2 seeds), printed as the table."""
    import os

    seeds = "2" if os.environ.get("RIVERBED_BOUNDED", "") not in ("", "0") else "3"
    assert main(["claims", "--quick", "--seeds", seeds, "--jobs", "2", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "seed claims at small scale" in text and "s in all" in text
