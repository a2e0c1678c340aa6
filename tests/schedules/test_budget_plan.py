"""plan_budgets: WSD branches vs WSD-S vs cosine, exact totals and ratios."""

from __future__ import annotations

import pytest

from riverbed.errors import ConfigError
from riverbed.schedules import WSD, WSDS, Cosine, DecayBranch, WarmupStable
from riverbed.schedules.budget_plan import Plan, load_plan, plan_budgets

BUDGETS = [10, 30, 50, 70, 100]  # % of the largest run


def test_course_note_ratios_with_decay_of_largest():
    # Cosine: 260 % of one run; WSD with 10 % decays: 90 (main) + 5 x 10 = 140 %; WSD-S: 100 %.
    p = plan_budgets([b * 100 for b in BUDGETS], decay=0.1, decay_of="largest")
    assert p.total("cosine") == 26_000 and p.ratio("cosine") == 2.6
    assert p.total("wsd") == 14_000 and p.ratio("wsd") == 1.4
    assert p.total("wsds") == 10_000 and p.ratio("wsds") == 1.0
    assert [(r.fork, r.decay) for r in p.rows] == [(0, 1000), (2000, 1000), (4000, 1000), (6000, 1000), (9000, 1000)]


def test_decay_of_budget_default():
    p = plan_budgets([b * 100 for b in BUDGETS], decay=0.1)
    assert [(r.fork, r.decay) for r in p.rows] == [(900, 100), (2700, 300), (4500, 500), (6300, 700), (9000, 1000)]
    assert p.total("wsd") == 9000 + 2600 and p.ratio("wsd") == pytest.approx(1.16)
    assert [r.wsds_decay for r in p.rows] == [100, 300, 500, 700, 1000]


def test_decay_of_period_matches_olmo_core_fraction():
    p = plan_budgets([1000, 3000], decay=0.1, decay_of="period")
    assert [r.decay for r in p.rows] == [100, 200]


def test_wsds_author_config_decays():
    # WSD-S author configs: budgets 12.5K / 25K / 50K, linear decay over 10 % of the cumulative steps.
    p = plan_budgets([12_500, 25_000, 50_000], decay=0.1, shape="linear", min_ratio=0.1)
    assert p.wsds_schedule() == WSDS(budgets=(12_500, 25_000, 50_000), warmup=0, decays=(1250, 2500, 5000), shape="linear", min_ratio=0.1)


def test_schedules_for_the_trainer():
    p = plan_budgets([100, 200], decay=0.2, shape="cosine", warmup=10, min_ratio=0.1)
    assert p.main_schedule() == WarmupStable(warmup=10)
    b0 = p.wsd_branch(0)
    assert b0 == DecayBranch(WarmupStable(warmup=10), fork_step=80, decay_steps=20, shape="cosine", min_ratio=0.1)
    assert b0.values() == WSD(10, 70, 20, shape="cosine", min_ratio=0.1).values()
    assert p.cosine_schedule(1) == Cosine(steps=200, warmup=10, min_ratio=0.1)
    w = p.wsds_schedule()
    assert w.multiplier(99) == pytest.approx(0.1) and w.multiplier(100) == 1.0 and w.multiplier(199) == pytest.approx(0.1)
    assert set(p.schedules(1)) == {"main", "wsd", "wsds", "cosine"}


def test_tokens_with_tokens_per_step_and_flops():
    p = plan_budgets([1e6, 2e6], unit="tokens", tokens_per_step=4096, n_params=1000, decay=0.1, warmup=40_000)
    assert p.position_unit == "steps"
    assert [r.length for r in p.rows] == [245, 489]  # ceil(tokens / 4096)
    assert [r.decay for r in p.rows] == [24, 49]  # round(0.1 * steps)
    assert p.warmup_positions == 10  # ceil(40_000 / 4096)
    total = p.total("wsd")
    assert total == (489 - 49) + 24 + 49
    assert p.tokens(total) == total * 4096
    assert p.flops(total) == 6.0 * 1000 * total * 4096


def test_tokens_without_tokens_per_step_count_tokens():
    p = plan_budgets([1e8, 2e8, 4e8], unit="tokens", decay=0.1, n_params=10**8)
    assert p.position_unit == "tokens"
    assert p.total("cosine") == 7 * 10**8 and p.ratio("cosine") == 1.75
    assert p.total("wsd") == 360_000_000 + 70_000_000
    assert p.flops(p.total("wsds")) == 6.0 * 10**8 * 4 * 10**8


def test_json_round_trip(tmp_path):
    p = plan_budgets([100, 200, 400], decay=0.1, warmup=5, tokens_per_step=64, n_params=123, shape="linear")
    assert Plan.from_json(p.to_json()) == p
    path = tmp_path / "plan.json"
    p.save(str(path))
    assert load_plan(str(path)) == p
    doc = p.to_dict()
    assert doc["strategies"]["wsd"]["total"] == p.total("wsd")
    assert doc["schedules"]["wsd"][0]["type"] == "decay-branch"
    tampered = p.to_json().replace('"fork": 90', '"fork": 91')
    with pytest.raises(ConfigError, match="plan.rows"):
        Plan.from_json(tampered)
    with pytest.raises(ConfigError, match="plan file"):
        load_plan(str(tmp_path / "missing.json"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"budgets": [200, 100]}, "budgets: must be strictly increasing, got out of order 200"),
        ({"budgets": [100, 100]}, "budgets: must be strictly increasing, got duplicate 100"),
        ({"budgets": [0, 100]}, "budgets: each must be a positive number"),
        ({"budgets": []}, "budgets: need at least one"),
        ({"budgets": [100], "decay": 0}, "decay: must be a fraction"),
        ({"budgets": [100], "decay": 1.5}, "decay: must be a fraction"),
        ({"budgets": [100], "unit": "flops"}, "unit: must be"),
        ({"budgets": [100], "shape": "zigzag"}, "plan.shape: unknown decay shape 'zigzag'"),
        ({"budgets": [100], "min_ratio": 2}, "min_ratio: must be"),
        ({"budgets": [100], "warmup": 95}, r"warmup: warmup \(95\) \+ decay \(10\)"),
        ({"budgets": [100, 105]}, "WSD-S decay 10 before budget 105"),
        ({"budgets": [100.5]}, "budgets: must be a whole number"),
        ({"budgets": [100], "decay_of": "run"}, "decay_of"),
    ],
)
def test_bad_input(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        plan_budgets(**kwargs)
