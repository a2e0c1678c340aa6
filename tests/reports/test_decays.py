"""The report's decay table: each decay branch against the main branch at the same tokens, negative drops explained."""

from riverbed.reports import build_report
from riverbed.reports.decays import decay_rows, explain_drop
from riverbed.runs import BranchRecord

from .helpers import main_loss, metrics, pt, wsd_tree


def test_rows_compare_each_branch_with_main_at_the_same_tokens(tmp_path):
    run = wsd_tree(tmp_path / "w", forks=(40, 80))
    rows = decay_rows(run)
    assert [(r.branch, r.fork, r.budget) for r in rows] == [("linear-from40-len10", 40, 50), ("linear-from80-len20", 80, 100)]
    for r in rows:
        assert r.main_at_fork == main_loss(r.fork) and r.main_at_budget == main_loss(r.budget) and not r.interpolated
        assert r.drop == r.main_at_budget - r.loss and abs(r.drop - 0.2) < 1e-9


def test_a_negative_drop_is_explained_not_printed_bare(tmp_path):
    run = wsd_tree(tmp_path / "w", forks=(80,))
    # A decay forked at step 15 that ends above the main branch (the model was still learning fast).
    run.add_branch(BranchRecord("linear-from15-len10", "decay", {"type": "decay-branch"}, parent="main", fork=pt(15, main_loss(15))))
    metrics(run.path, "linear-from15-len10", [{"kind": "eval", "step": 25, "eval_loss": main_loss(25) + 0.03}])
    run.finish_branch("linear-from15-len10", pt(25, main_loss(25) + 0.03))
    early = next(r for r in decay_rows(run) if r.fork == 15)
    assert early.drop < 0 and early.interpolated  # main evaluates every 10 steps: 25 lies between 20 and 30
    why = explain_drop(early.drop, early.main_at_fork, early.main_at_budget, fork=15, budget=25, main_last=200)
    assert abs(early.main_at_budget - (main_loss(20) + main_loss(30)) / 2) < 1e-12
    assert why.startswith(f"the decay hurt: the branch ends {-early.drop:.4f} above the undecayed main branch")
    assert "still learning fast" in why and "8 % of the main branch" in why
    page = build_report(run.path, tmp_path / "r.html", predictor=False).html.read_text()
    assert ">Decay branches against the main branch</h2>" in page
    assert "(hurt)" in page and "linear-from15-len10: the decay hurt" in page
    assert explain_drop(0.01, 2.0, 1.9, fork=1, budget=2, main_last=10) == ""
