"""`riverbed plan` end to end, in process."""

from __future__ import annotations

import json

from riverbed.cli.main import main
from riverbed.schedules.budget_plan import load_plan


def test_plan_table_json_and_plot(tmp_path, capsys):
    out, png = tmp_path / "plan.json", tmp_path / "plan.png"
    argv = ["plan", "--budgets", "1e8,2e8,4e8", "--unit", "tokens", "--decay-fraction", "0.1", "--shape", "1-sqrt",
            "--tokens-per-step", "65536", "--n-params", "1e8", "-o", str(out), "--plot", str(png)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "WSD branches" in text and "WSD-S" in text and "cosine per budget" in text
    plan = load_plan(str(out))
    assert [r.length for r in plan.rows] == [1526, 3052, 6104]  # ceil(tokens / 65536)
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["plan", "--budgets", "10,30,50,70,100", "--decay-of", "largest", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {k: v["ratio"] for k, v in doc["strategies"].items()} == {"wsd": 1.4, "wsds": 1.0, "cosine": 2.6}


def test_plan_errors_exit_2(capsys):
    assert main(["plan", "--budgets", "4e8,2e8"]) == 2
    assert "budgets: must be strictly increasing" in capsys.readouterr().err
    assert main(["plan", "--budgets", "100", "--shape", "zig"]) == 2
    assert "shape" in capsys.readouterr().err
    assert main(["plan", "--budgets", "100", "--n-params", "1.5"]) == 2
    assert "--n-params" in capsys.readouterr().err
