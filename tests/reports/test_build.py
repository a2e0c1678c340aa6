"""build_report / build_compare: what the page holds, what is written beside it, what is refused."""

import re

import pytest

from riverbed.errors import ReportError, RunError
from riverbed.reports import build_compare, build_report

from .helpers import wsd_tree, wsds_run

PNG = b"\x89PNG\r\n\x1a\n"


def test_report_of_a_run_tree(tmp_path):
    run = wsd_tree(tmp_path / "w")
    rep = build_report(run.path)
    assert rep.html == run.path / "report.html"
    assert sorted(p.name for p in rep.images) == ["report-fit.png", "report-loss.png", "report-lr.png"]
    assert all(p.read_bytes()[:8] == PNG for p in rep.images)
    page = rep.html.read_text()
    for section in ("Learning-rate schedules", "Held-out loss", "Compute accounting", "Spike-guard events",
                    "Scaling fit", "Config", "Software"):
        assert f">{section}</h2>" in page
    assert page.count('src="data:image/png;base64,') == 3
    assert "default-src &#x27;none&#x27;" in page or "default-src 'none'" in page
    # nothing the browser would fetch: no external src/href, no script
    assert not re.search(r'(src|href)="(?!data:|#)', page) and "<script" not in page
    assert "spike" in page and "loss=9.5" in page  # the guard event
    assert "this run tree (all branches)" in page and "budgets as separate from-scratch runs" in page
    assert "bootstrap intervals" in page and "beta" in page


def test_four_finished_points_get_a_scaling_fit_with_its_caveat(tmp_path):
    run = wsd_tree(tmp_path / "w", forks=(40, 80, 120, 160))
    page = build_report(run.path, predictor=False).html.read_text()
    assert "fitted to 4 finished points" in page and "few degrees of freedom" in page and "bootstrap intervals" in page


def test_empty_sections_are_left_out(tmp_path):
    from riverbed.runs import BranchRecord, Run

    from .helpers import main_loss, metrics, pt

    run = Run.create(tmp_path / "bare", {"model": {"d_model": 8}, "schedule": {"type": "warmup-stable"}})
    run.add_branch(BranchRecord("main", "main", {"type": "warmup-stable", "warmup": 10}, status="stopped",
                                progress=pt(50, main_loss(50))))
    metrics(run.path, "main", [{"kind": "eval", "step": s, "eval_loss": main_loss(s)} for s in range(10, 51, 10)])
    page = build_report(run.path).html.read_text()
    for gone in ("Spike-guard events", "Scaling fit", "Compute accounting", "Decay branches against the main branch",
                 "Trajectory predictor"):
        assert f">{gone}</h2>" not in page, gone
    assert "No finished budgets yet" in page


def test_the_manifest_records_the_software_that_created_the_run_and_old_ones_still_read(tmp_path):
    import json

    import numpy
    from riverbed import __version__
    from riverbed.runs import Run

    run = wsd_tree(tmp_path / "w", forks=(40,))
    sw = run.manifest.software
    assert sw["riverbed"] == __version__ and sw["numpy"] == numpy.__version__ and set(sw) == {"riverbed", "torch", "python", "numpy"}
    page = build_report(run.path, predictor=False).html.read_text()
    assert "versions of the software that created w (run.json software)" in page
    doc = json.loads((run.path / "run.json").read_text())
    del doc["software"]
    (run.path / "run.json").write_text(json.dumps(doc))
    assert Run.open(run.path).manifest.software == {}
    assert "records no software versions" in build_report(run.path, predictor=False).html.read_text()


def test_report_escapes_run_strings(tmp_path):
    run = wsd_tree(tmp_path / "w", forks=(40,))
    run.record_event("main", {"source": "guard", "event": "<script>alert(1)</script>"})
    page = build_report(run.path, tmp_path / "r.html").html.read_text()
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page


def test_bad_requests_write_nothing(tmp_path):
    run = wsd_tree(tmp_path / "w", forks=(40,))
    before = sorted(p.name for p in run.path.iterdir())
    with pytest.raises(ReportError, match="an .html file"):
        build_report(run.path, tmp_path / "r.png")
    with pytest.raises(ReportError, match="the run's own files"):
        build_report(run.path, run.path / "branches" / "main" / "r.html")
    with pytest.raises(RunError, match="not a riverbed run"):
        build_report(tmp_path / "nope", tmp_path / "r.html")
    with pytest.raises(ReportError, match="at least two runs"):
        build_compare([run.path], tmp_path / "c.html")
    with pytest.raises(ReportError, match="named twice"):
        build_compare([run.path, run.path], tmp_path / "c.html")
    assert sorted(p.name for p in run.path.iterdir()) == before
    assert not list(tmp_path.glob("*.html")) and not list(tmp_path.glob("*.png"))


def test_compare_page(tmp_path):
    a, b = wsd_tree(tmp_path / "wsd"), wsds_run(tmp_path / "wsds")
    rep = build_compare([a.path, b.path], tmp_path / "out" / "cmp.html")
    assert sorted(p.name for p in rep.images) == ["cmp-loss-flops.png", "cmp-loss-tokens.png", "cmp-lr.png"]
    page = rep.html.read_text()
    assert "Held-out loss at equal tokens" in page and "Held-out loss at equal compute" in page
    assert "keys that differ between the runs" in page and "schedule.type" in page
    assert page.count('src="data:image/png;base64,') == 3


def test_an_existing_page_that_riverbed_did_not_write_is_never_replaced(tmp_path):
    from riverbed.errors import ReportError
    from riverbed.reports.html import Page, check_page_out

    mine = tmp_path / "index.html"
    mine.write_text("<html><body>my notes</body></html>")
    with pytest.raises(ReportError, match="not a riverbed report"):
        check_page_out(mine, "--out")
    assert mine.read_text() == "<html><body>my notes</body></html>"
    ours = tmp_path / "report.html"
    ours.write_text(Page("t").render())
    check_page_out(ours, "--out")  # an earlier riverbed page may be replaced


def test_figures_beside_the_page_never_replace_a_users_file(tmp_path):
    run = wsd_tree(tmp_path / "w", forks=(40,))
    mine = tmp_path / "x-loss.png"
    mine.write_bytes(PNG + b"my own figure")
    with pytest.raises(ReportError, match="x-loss.png.*not written by riverbed"):
        build_report(run.path, tmp_path / "x.html", fit=False)
    assert mine.read_bytes() == PNG + b"my own figure"
    assert not (tmp_path / "x.html").exists() and not (tmp_path / "x-lr.png").exists()  # nothing half-written
    # riverbed's own figures (and those beside riverbed's own page) are replaced by the next report
    mine.unlink()
    first = build_report(run.path, tmp_path / "x.html", fit=False)
    assert build_report(run.path, tmp_path / "x.html", fit=False).images == first.images
    (tmp_path / "y-lr.png").write_bytes((tmp_path / "x-lr.png").read_bytes())  # a riverbed PNG, no page
    build_report(run.path, tmp_path / "y.html", fit=False)
