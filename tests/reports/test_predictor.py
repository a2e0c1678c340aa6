"""The report's predictor section: the law's fit, its predictions of each decay branch, the leave-one-out verdict."""

from riverbed.reports import build_report
from riverbed.reports.predictor import predictor_section

from .helpers import LAW, law_tree, wsd_tree


def test_a_run_the_law_describes_gets_a_fit_predictions_with_intervals_and_a_trust_verdict(tmp_path):
    run = law_tree(tmp_path / "law")
    sec = predictor_section(run.path)
    d = sec.fit.diagnostics
    assert d.verdict == "usable", d.reasons
    assert all(c.lo <= LAW[c.name] <= c.hi for c in d.params)
    assert [r.branch for r in sec.rows] == [b.name for b in run.branches if b.kind == "decay"]
    for r in sec.rows:  # each predicted by a fit on main and the four other branches
        assert r.lo < r.predicted < r.hi and abs(r.predicted - r.trained) / r.trained < 1e-3, r
    # 95 % intervals of a measured loss: measured here, 4 of the 5 trained losses fall inside (the fifth, the
    # latest fork, is an extrapolation 2.7 noise sigmas off).
    assert sum(r.lo <= r.trained <= r.hi for r in sec.rows) >= 4
    assert sec.verdict.startswith("Trust the mpl law on this run: its leave-one-out error")
    page = build_report(run.path, tmp_path / "r.html").html.read_text()
    assert ">Trajectory predictor</h2>" in page and "95 % linearised intervals" in page and "Trust the mpl law" in page


def test_a_run_the_law_cannot_use_says_why_and_shows_no_predictions(tmp_path):
    run = wsd_tree(tmp_path / "w", forks=(40, 80))  # hand-made decay specs the predictor cannot read
    sec = predictor_section(run.path)
    assert sec.fit is None and sec.rows == () and sec.note.startswith("no fit:")
    page = build_report(run.path, tmp_path / "r.html").html.read_text()
    assert ">Trajectory predictor</h2>" in page and "no fit:" in page
    assert ">Trajectory predictor</h2>" not in build_report(run.path, tmp_path / "s.html", predictor=False).html.read_text()
