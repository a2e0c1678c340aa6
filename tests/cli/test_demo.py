import json

from riverbed.cli.main import main
from riverbed.runs import Run


def test_demo_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "one finished model per budget" in text and "12 steps" in text and "36 steps" in text
    assert f"riverbed report {out}" in text  # the one more command to an HTML report
    assert (out / "branches.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "demo.json").read_text())
    rows = summary["rows"]
    assert [r["budget_steps"] for r in rows] == [12, 24, 36]
    assert [r["fork_step"] for r in rows] == [9, 18, 27]  # the last 25 % of each budget decays
    assert [r["tokens"] for r in rows] == [12 * 256, 24 * 256, 36 * 256]
    assert all(r["main_loss_at_fork"] is not None and r["main_loss_at_budget"] is not None for r in rows)
    run = Run.open(out)
    kinds = sorted(b.kind for b in run.branches)
    assert kinds == ["decay", "decay", "decay", "main"]
    assert all(b.status == "finished" for b in run.branches if b.kind == "decay")
    assert run.branch("main").status == "stopped"
    # main 36 steps + decays 3 + 6 + 9, against 12 + 24 + 36 steps from scratch
    assert summary["tree_tokens"] == (36 + 18) * 256 and summary["scratch_tokens"] == 72 * 256

    # Running it again resumes: nothing is retrained, the same table comes back.
    before = {b.name: b.final for b in run.branches}
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    assert {b.name: b.final for b in Run.open(out).branches} == before
