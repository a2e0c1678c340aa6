"""The bring-your-own-run journey with a plain torch loop for the branches (the README's journey
trains them with Trainer): adopt -> ls -> branch --command
-> the branches in the tree -> predict -> merge -> scaling -> report, the source byte-identical."""

from __future__ import annotations

import json

import pytest

from riverbed.cli.main import main
from riverbed.orchestration.adopt import adopt
from riverbed.runs import Run
from tests.orchestration.conftest import tree_hash


@pytest.mark.slow
def test_adopted_run_through_every_verb(hf_output, tmp_path, recipe_env, capsys):
    before = tree_hash(hf_output)
    run, _ = adopt(hf_output, tmp_path / "run")
    r = str(run.path)

    def ok(*argv: str) -> str:
        rc = main(list(argv))
        cap = capsys.readouterr()
        assert rc == 0, f"{argv}: {cap.err}"
        return cap.out

    assert main(["predict", "fit", r, "--law", "tissue"]) == 2  # no decay branch yet: the law cannot see a decay
    err = capsys.readouterr().err
    assert "needs at least one decay" in err or "is unreliable" in err
    ok("branch", r, "--from", "24,40", "--shape", "1-sqrt", "--length", "8", "--command", recipe_env("plain_decay.py"),
       "--no-progress")
    listing = json.loads(ok("ls", r, "--json"))
    assert sorted(p["branch"] for p in listing["finished_points"]) == ["1-sqrt-from24-len8", "1-sqrt-from40-len8"]
    assert listing["accounting"]["n_budgets"] == 2
    assert "1-sqrt-from40-len8" in ok("ls", r)
    law = tmp_path / "law.json"
    ok("predict", "fit", r, "--law", "tissue", "-o", str(law), "--force")  # a 48-step toy: its fit is unreliable
    assert json.loads(law.read_text())["meta"]["branches"] == ["main", "1-sqrt-from40-len8"]
    pred = json.loads(ok("predict", "branch", r, "--from", "32", "--shape", "1-sqrt", "--length", "8", "--law", "tissue",
                         "--bootstrap", "0", "--json", "--force"))
    curve = pred["predictions"][0]["curve"]
    assert curve[-1]["step"] == 40 and curve[-1]["tokens"] == 40 * 192
    ok("merge", "--run", r, "--last", "2", "--every", "8", "--until", "32", str(tmp_path / "merged"))
    assert json.loads((tmp_path / "merged" / "merge.json").read_text())["selection"]["until"] == 32
    assert main(["scaling", "fit", r, "--law", "data"]) == 2  # two finished budgets for three parameters: refused
    assert "2 distinct points" in capsys.readouterr().err
    ok("report", r, "--out", str(tmp_path / "report.html"))
    assert "1-sqrt-from24-len8" in (tmp_path / "report.html").read_text()
    assert Run.open(run.path).branch("main").status == "stopped"
    assert tree_hash(hf_output) == before
