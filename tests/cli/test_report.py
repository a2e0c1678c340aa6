"""`riverbed report` and `riverbed ls --plot` end to end (exit codes, files written, nothing else)."""

from riverbed.cli.main import main

from tests.reports.helpers import wsd_tree, wsds_run


def test_report_verb(tmp_path, capsys):
    run = wsd_tree(tmp_path / "w", forks=(40, 80))
    assert main(["report", str(run.path)]) == 0
    out = capsys.readouterr().out
    assert f"report: {run.path / 'report.html'}" in out and "report-loss.png" in out
    assert (run.path / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert main(["report", str(run.path), "--out", str(tmp_path / "x" / "mine.html"), "--no-fit"]) == 0
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["mine-loss.png", "mine-lr.png", "mine.html"]


def test_report_compare_verb(tmp_path, capsys):
    a, b = wsd_tree(tmp_path / "a", forks=(40,)), wsds_run(tmp_path / "b")
    assert main(["report", "--compare", str(a.path), str(b.path), "--out", str(tmp_path / "cmp.html")]) == 0
    assert "cmp-loss-flops.png" in capsys.readouterr().out
    assert main(["report", str(a.path), "--compare", str(b.path), "--out", str(tmp_path / "cmp2.html")]) == 0


def test_report_user_errors_exit_2(tmp_path, capsys):
    a = wsd_tree(tmp_path / "a", forks=(40,))
    assert main(["report", "--compare", str(a.path), str(a.path)]) == 2
    assert "--compare needs --out" in capsys.readouterr().err
    assert main(["report"]) == 2
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "not a riverbed run" in capsys.readouterr().err
    assert main(["report", str(a.path), "--out", str(a.path / "run.json")]) == 2
    assert not (a.path / "report.html").exists()


def test_ls_plot_draws_the_tree(tmp_path, capsys):
    run = wsd_tree(tmp_path / "w", forks=(40,))
    assert main(["ls", str(run.path), "--plot", str(tmp_path / "tree.png")]) == 0
    assert (tmp_path / "tree.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["ls", str(run.path), "--plot", str(tmp_path / "tree.txt")]) == 2
    assert main(["ls", str(run.path), "--plot", str(run.path / "branches" / "t.png")]) == 2
    assert not (run.path / "branches" / "t.png").exists()
