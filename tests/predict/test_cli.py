"""`riverbed predict fit|curve|branch|schedule|check` end to end, in process (beside the run-tree fixture)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from riverbed.cli.main import main
from riverbed.cli.predict import LAW_CHOICES

DATA = Path(__file__).parent / "data" / "mpl400"


def test_fit_csvs_then_predict_a_held_out_csv(tmp_path, capsys):
    law = tmp_path / "law.json"
    srcs = [str(DATA / f"{n}.csv") for n in ("cosine_24000", "constant_24000", "wsdcon_9")]
    assert main(["predict", "fit", *srcs, "--law", "mpl", "-o", str(law)]) == 0
    out = capsys.readouterr().out
    assert "in raw-LR units" in out and "cosine_24000: 170 points" in out and "95 % interval" in out
    assert "verdict: usable (96 points, 7 parameters, 89 degrees of freedom)" in out
    doc = json.loads(law.read_text())
    assert doc["law"] == "mpl" and set(doc["params"]) == {"L0", "A", "alpha", "B", "C", "beta", "gamma"}
    assert doc["verdict"] == "usable" and doc["forced"] is False and doc["diagnostics"]["dof"] == 89
    assert main(["predict", "curve", str(law), "--lr", str(DATA / "wsd_20000_24000.csv"), "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)
    rows = (DATA / "wsd_20000_24000.csv").read_text().splitlines()[1:]
    assert [r["step"] for r in pred["rows"]] == [int(r.split(",")[0]) for r in rows]  # every row, warmup end included
    assert pred["mean_rel_error"] < 0.002 and pred["max_rel_error"] < 0.015  # measured 0.13 % / 1.11 %
    assert all(r["lo"] <= r["pred"] <= r["hi"] for r in pred["rows"]) and pred["interval"] == "linearised"
    # Without a loss column: predictions only.
    lr_only = tmp_path / "lr.csv"
    lr_only.write_text("step,lr\n100,0.001\n200,0.001\n300,0.0001\n")
    assert main(["predict", "curve", str(law), "--lr", str(lr_only), "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)
    assert "mean_rel_error" not in pred
    assert [(r["step"], r["lr"]) for r in pred["rows"]] == [(100, 0.001), (200, 0.001), (300, 0.0001)]


def test_fit_csv_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("step,loss\n1,2.0\n")
    law = tmp_path / "law.json"
    assert main(["predict", "fit", str(bad), "-o", str(law)]) == 2
    assert "bad.csv: missing column(s) lr" in capsys.readouterr().err
    assert not law.exists()
    src = tmp_path / "a.csv"
    shutil.copy(DATA / "wsdcon_9.csv", src)
    assert main(["predict", "fit", str(src), "-o", str(src)]) == 2
    assert "is the input" in capsys.readouterr().err
    assert main(["predict", "fit", str(src), "--schedule", '{"type": "nope"}']) == 2
    assert "unknown schedule type" in capsys.readouterr().err


def test_run_tree_fit_branch_schedule(predict_tree, tmp_path, capsys):
    law = tmp_path / "law.json"
    # The 60-step tree's fit is unreliable: refused (exit 2, the reasons, nothing written) unless --force.
    assert main(["predict", "fit", str(predict_tree), "--law", "mpl", "-o", str(law)]) == 2
    assert "the mpl fit is unreliable: " in capsys.readouterr().err and not law.exists()
    assert main(["predict", "fit", str(predict_tree), "--law", "mpl", "-o", str(law), "--force"]) == 0
    assert "FORCED" in capsys.readouterr().out
    saved = json.loads(law.read_text())
    assert saved["meta"]["branches"] == ["main", "1-sqrt-from30-len30"] and saved["forced"] is True
    assert saved["verdict"] == "unreliable" and saved["diagnostics"]["reasons"]
    png, out = tmp_path / "b.png", tmp_path / "b.json"
    assert main(["predict", "branch", str(predict_tree), "--from", "45", "--shape", "linear", "--length", "25%",
                 "--law", "all", "--bootstrap", "3", "--plot", str(png), "-o", str(out), "--json"]) == 2
    assert "unreliable" in capsys.readouterr().err and not out.exists() and not png.exists()
    assert main(["predict", "branch", str(predict_tree), "--from", "45", "--shape", "linear", "--length", "25%",
                 "--law", "all", "--bootstrap", "3", "--plot", str(png), "-o", str(out), "--json", "--force"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["law"] for p in doc["predictions"]] == list(LAW_CHOICES) and doc["law_spread"] >= 0
    # The refused fits (mpl among them) are forced and say so; a usable one is not marked.
    preds = {p["law"]: p for p in doc["predictions"]}
    assert preds["mpl"]["forced"] is True and doc["forced"] is True
    assert all(p["interval"] == "bootstrap (3 refits)" for p in doc["predictions"])
    assert all(p["final_ci95"][0] <= p["final_loss"] <= p["final_ci95"][1] for p in doc["predictions"])
    assert doc["predictions"][0]["curve"][-1]["step"] == 60  # 25 % of the budget: 15 steps from 45
    assert json.loads(out.read_text()) == doc and png.read_bytes()[:4] == b"\x89PNG"
    assert "trained" not in doc  # no linear branch was trained
    # The same schedule as a trained branch: its trained final loss is reported beside the prediction.
    assert main(["predict", "branch", str(predict_tree), "--from", "30", "--shape", "1-sqrt", "--length", "15",
                 "--law", "tissue", "--bootstrap", "0", "--json", "--force"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc["trained"]) == ["1-sqrt-from30-len15"]
    assert main(["predict", "schedule", str(predict_tree), "--fit", str(law), "--schedule",
                 '{"type": "cosine", "steps": 80, "warmup": 4, "min_ratio": 0.1}', "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out
    assert "final loss" in out and "95 % interval" in out and "FORCED" in out  # the law file was forced
    rank_png = tmp_path / "rank.png"
    assert main(["predict", "schedule", str(predict_tree), "--fit", str(law), "--best-decay", "--budget", "60", "--json",
                 "--bootstrap", "3", "--plot", str(rank_png)]) == 0
    best = json.loads(capsys.readouterr().out)
    assert best["options"][0]["final_loss"] == min(o["final_loss"] for o in best["options"])
    assert rank_png.read_bytes()[:4] == b"\x89PNG" and best["forced"] is True
    assert all(o["final_ci95"][0] <= o["final_loss"] <= o["final_ci95"][1] for o in best["options"])
    assert best["tied_with_best"] == sum(o["tied_with_best"] for o in best["options"]) and best["statement"].startswith("best: ")
    assert main(["predict", "schedule", str(predict_tree), "--fit", str(law), "--best-decay", "--budget", "60", "--bootstrap", "3"]) == 0
    out = capsys.readouterr().out
    assert "vs best" in out and best["statement"][:30] in out


def test_run_tree_bad_requests_exit_2_and_write_nothing(predict_tree, tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["predict", "branch", str(predict_tree), "--from", "50", "--shape", "linear", "--length", "10", "-o", str(out)]) == 2
    assert "no checkpoint at step 50" in capsys.readouterr().err and not out.exists()
    assert main(["predict", "schedule", str(predict_tree), "--schedule",
                 '{"type": "wsds", "budgets": [40, 80], "warmup": 4, "decays": [10, 10]}', "-o", str(out)]) == 2
    assert "LR rises at step 40" in capsys.readouterr().err and not out.exists()
    assert main(["predict", "fit", str(predict_tree), "--calibrate", "main", "ghost"]) == 2
    assert "no branch 'ghost'" in capsys.readouterr().err
    inside = predict_tree / "law.json"
    assert main(["predict", "fit", str(predict_tree), "-o", str(inside)]) == 2
    assert not inside.exists()


def test_check_json_shape(predict_tree, capsys):
    assert main(["predict", "check", str(predict_tree), "--no-merge", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) >= {"branches", "summary"}
    assert set(doc["summary"]) == {*LAW_CHOICES, "main"}
    # The MPL's fold fits all stop at a bound on this 60-step tree: refused, so never trusted.
    assert doc["verdict"]["laws"]["mpl"]["trust"] is False and "refused" in doc["verdict"]["laws"]["mpl"]["why"]
    assert doc["summary"]["main"]["mean_rel_error"] < 1 and doc["summary"]["mpl"]["mean_rel_error"] is None
    assert main(["predict", "check", str(predict_tree), "--no-merge", "--law", "tissue", "--force"]) == 0
    out = capsys.readouterr().out
    assert "leave-one-out" in out and "FORCED" in out
    assert re.match(r"Do not trust the laws on this run: tissue: its fit was refused on [1-3] of 3", out.rstrip().splitlines()[-1])


def test_the_cli_offers_every_law_and_defaults_to_the_library_default():
    from riverbed.predict.laws import DEFAULT_LAW, LAWS

    assert set(LAW_CHOICES) == set(LAWS) and LAW_CHOICES[0] == DEFAULT_LAW
