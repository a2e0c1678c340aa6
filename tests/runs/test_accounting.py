import math

import pytest

from riverbed.runs.accounting import Budget, Spend, account, wsd_tree_fractions


def test_wsd_tree_vs_separate_runs_golden():
    # Budgets 10/30/50/70/100 % of one run: separate runs cost 260 %; a WSD tree with 10 %
    # decays costs main to the last fork (90 %) + decays (1+3+5+7+10 = 26 %) = 116 %.
    tree, scratch = wsd_tree_fractions([0.1, 0.3, 0.5, 0.7, 1.0], 0.1)
    assert tree == pytest.approx(1.16)
    assert scratch == pytest.approx(2.60)
    # 20 % decays: 80 % + 52 % = 132 %.
    assert wsd_tree_fractions([0.1, 0.3, 0.5, 0.7, 1.0], 0.2)[0] == pytest.approx(1.32)


def test_account_golden_from_branch_spend():
    # The same 10/30/50/70/100 tree in tokens (largest budget 1000, 10 % decays).
    budgets = [100, 300, 500, 700, 1000]
    spend = [Spend("main", 900, 900 * 6.0)] + [Spend(f"d{b}", b // 10, b // 10 * 6.0) for b in budgets]
    acc = account(spend, [Budget(f"d{b}", b, b * 6.0) for b in budgets])
    assert acc.tree_tokens == 1160
    assert acc.scratch_tokens == 2600
    assert acc.tree_flops == 6960.0
    assert acc.scratch_flops == 15600.0
    assert acc.tree_pct == pytest.approx(116.0)
    assert acc.scratch_pct == pytest.approx(260.0)
    assert acc.saving == pytest.approx(1 - 1160 / 2600)
    assert acc.to_dict()["n_budgets"] == 5


def test_account_empty_and_negative():
    acc = account([Spend("main", 50, 1.0)], [])
    assert acc.scratch_tokens == 0 and math.isnan(acc.tree_pct) and acc.saving == 0.0
    with pytest.raises(ValueError, match="'main'"):
        account([Spend("main", -1, 0.0)], [])
    with pytest.raises(ValueError, match="decay_fraction"):
        wsd_tree_fractions([1.0], 1.5)


def test_needed_counts_main_only_to_its_last_fork(tmp_path):
    from runs.helpers import make_tree

    from riverbed.runs.accounting import run_accounting

    run = make_tree(tmp_path / "r")  # main at 500 steps, forks at 100 and 300, decays of 20 and 60
    acc = run_accounting(run.branches, run.finished_points())
    assert acc.tree_tokens == (500 + 20 + 60) * 100
    assert acc.needed_tokens == (300 + 20 + 60) * 100
    assert acc.needed_flops == acc.needed_tokens * 6.0
    assert acc.needed_pct == pytest.approx(100 * 38000 / 36000)
