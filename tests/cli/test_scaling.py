"""`riverbed scaling fit|predict|frontier` end to end, in process."""

from __future__ import annotations

import json

import numpy as np
import pytest

from riverbed.cli.main import main
from tests.scaling.helpers import fake_run, law_run

TRUE = {"E": 2.0, "A": 300.0, "alpha": 0.35, "B": 900.0, "beta": 0.3}


def write_csv(path, header="N,D,loss"):
    rows = [header]
    for n in (1e7, 3e7, 1e8, 3e8):
        for d in (1e8, 3e8, 1e9, 3e9):
            loss = TRUE["E"] + TRUE["A"] / n ** TRUE["alpha"] + TRUE["B"] / d ** TRUE["beta"]
            rows.append(f"{n},{d},{loss * (1 + 0.002 * np.sin(n * d))}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_fit_predict_frontier(tmp_path, capsys):
    csv, fit_json, png = write_csv(tmp_path / "pts.csv"), tmp_path / "fit.json", tmp_path / "fit.png"
    assert main(["scaling", "fit", str(csv), "--bootstrap", "10", "-o", str(fit_json), "--plot", str(png), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "E + A/N^alpha + B/D^beta" in out and "95% CI" in out and "best start" in out and "of 4500 starts" in out
    doc = json.loads(fit_json.read_text())
    assert doc["params"]["alpha"] == pytest.approx(0.35, abs=0.02)
    assert doc["n_starts"] == 4500 and len(doc["bootstrap"]) == 10
    assert png.read_bytes()[:4] == b"\x89PNG"

    assert main(["scaling", "predict", str(fit_json), "--n", "1e9", "--d", "2e10", "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)
    truth = TRUE["E"] + TRUE["A"] / 1e9 ** TRUE["alpha"] + TRUE["B"] / 2e10 ** TRUE["beta"]
    assert pred["loss"]["value"] == pytest.approx(truth, rel=0.01)
    assert pred["loss"]["lo"] <= pred["loss"]["value"] <= pred["loss"]["hi"]
    assert main(["scaling", "predict", str(fit_json), "--n", "1e9", "--d", "2e10"]) == 0
    assert "predicted loss at N=1e+09, D=2e+10" in capsys.readouterr().out

    assert main(["scaling", "frontier", str(fit_json), "--flops", "1e20", "--json"]) == 0
    fr = json.loads(capsys.readouterr().out)["frontier"][0]
    assert fr["N_opt"]["value"] * fr["D_opt"]["value"] * 6 == pytest.approx(1e20)
    assert main(["scaling", "frontier", str(fit_json), "--flops", "1e20", "1e21"]) == 0
    assert "N_opt" in capsys.readouterr().out


def test_fit_json_stdout_data_law_from_run(tmp_path, capsys):
    run = law_run(tmp_path / "s1", 10**6, [1e6, 2e6, 4e6, 8e6, 1.6e7], TRUE)
    assert main(["scaling", "fit", str(run), "--law", "data", "--bootstrap", "0", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["law"] == "data" and doc["n_starts"] == 150
    assert doc["params"]["beta"] == pytest.approx(0.3, rel=1e-3)
    assert doc["points"]["labels"][0] == "s1/decay-1000000"


def test_drop_highest_and_mean_warning(tmp_path, capsys):
    run = law_run(tmp_path / "s1", 10**6, [1e6, 2e6, 4e6, 8e6, 1.6e7, 3.2e7], TRUE)
    with pytest.warns(UserWarning):
        argv = ["scaling", "fit", str(run), "--law", "data", "--bootstrap", "0", "--drop-highest", "2", "--loss-reduction", "mean", "--no-progress"]
        assert main(argv) == 0
    out = capsys.readouterr().out
    assert "dropped 2 highest-loss points: s1/decay-1000000, s1/decay-2000000" in out
    assert "warning: loss_reduction='mean' averages the Huber terms" in out


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: (p / "bad.csv").write_text("N,loss\n1,2\n") and [str(p / "bad.csv")], "missing column(s) D (or C)"),
        (lambda p: (p / "few.csv").write_text("N,D,loss\n1e8,1e9,3\n2e8,1e9,2.9\n") and [str(p / "few.csv")], "2 distinct points cannot determine 5 parameters"),
        (lambda p: (p / "neg.csv").write_text("N,D,loss\n" + "".join(f"1e8,{k}e9,3\n" for k in range(1, 6)) + "1e8,-1,3\n") and [str(p / "neg.csv")], "D must be positive; got -1 at neg.csv:row 6"),
        (lambda p: [str(fake_run(p / "r0", 10**6, []))], "has no finished branches"),
        (lambda p: [str(p / "missing")], "no such file or run directory"),
    ],
)
def test_bad_input_exit_2(tmp_path, capsys, setup, message):
    sources = setup(tmp_path)
    assert main(["scaling", "fit", *sources, "--bootstrap", "0"]) == 2
    assert message in capsys.readouterr().err


def test_predict_bad_fit_file_exit_2(tmp_path, capsys):
    (tmp_path / "x.json").write_text("{}")
    assert main(["scaling", "predict", str(tmp_path / "x.json"), "--d", "1e9"]) == 2
    assert "not a riverbed fit file" in capsys.readouterr().err
    assert main(["scaling", "frontier", str(tmp_path / "nope.json"), "--flops", "1e20"]) == 2
    assert "cannot read fit" in capsys.readouterr().err


def test_fit_user_csv_columns_and_warnings(tmp_path, capsys):
    # A W&B-style TSV export with its own column names: the empty tokens cells fall back to
    # flops / 6N, and train/loss (not a held-out loss) is no alias of loss.
    rows = ["model_size\ttokens\tflops\ttrain/loss\teval/loss"]
    for n in (1e7, 3e7, 1e8):
        for d in (1e8, 3e8, 1e9):
            loss = TRUE["E"] + TRUE["A"] / n ** TRUE["alpha"] + TRUE["B"] / d ** TRUE["beta"]
            rows.append(f"{n:g}\t\t{6 * n * d:g}\t9.9\t{loss * (1 + 0.002 * np.sin(n * d)):.6f}")
    tsv, fit_json = tmp_path / "wandb.tsv", tmp_path / "fit.json"
    tsv.write_text("\n".join(rows) + "\n")
    argv = ["scaling", "fit", str(tsv), "--bootstrap", "0", "-o", str(fit_json), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "design: 9 rows, 9 distinct points for 5 parameters (4 degrees of freedom)" in out
    assert "warning: few degrees of freedom" in out
    doc = json.loads(fit_json.read_text())
    assert doc["design"]["range"]["N"] == [1e7, 1e8] and doc["design"]["dof"] == 4
    assert doc["params"]["alpha"] == pytest.approx(TRUE["alpha"], abs=0.05)
    assert any("few degrees of freedom" in w for w in doc["warnings"])

    # 70x the largest N: said in the table output and in the JSON
    assert main(["scaling", "predict", str(fit_json), "--n", "7e9", "--d", "1e9"]) == 0
    assert "warning: extrapolation: N=7e+09 is 70x the largest N in the fit (1e+08)" in capsys.readouterr().out
    assert main(["scaling", "predict", str(fit_json), "--n", "5e7", "--d", "5e8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == []
    assert main(["scaling", "frontier", str(fit_json), "--flops", "1e21", "--json"]) == 0
    warns = json.loads(capsys.readouterr().out)["frontier"][0]["warnings"]
    assert any(w.startswith("extrapolation: C=1e+21 is 1.67e+03x the largest C") for w in warns)

    assert main(["scaling", "fit", str(tsv), "--n-col", "width", "--bootstrap", "0"]) == 2
    assert "--n-col 'width' is not a column" in capsys.readouterr().err


def test_fit_identical_rows_refused_and_single_size_suggests_data_law(tmp_path, capsys):
    csv = tmp_path / "same.csv"
    csv.write_text("N,D,loss\n" + "1e8,1e9,3.0\n" * 10)
    assert main(["scaling", "fit", str(csv), "--bootstrap", "0"]) == 2
    assert "1 distinct points (10 rows, 9 repeating an earlier (N, D)) cannot determine 5 parameters" in capsys.readouterr().err
    run = law_run(tmp_path / "s1", 10**6, [1e6, 2e6, 4e6], TRUE)
    assert main(["scaling", "fit", str(run), "--bootstrap", "0"]) == 2
    assert "with one model size (N=1e+06) fit --law data" in capsys.readouterr().err
    assert main(["scaling", "fit", str(run), "--n-col", "params", "--law", "data", "--bootstrap", "0"]) == 2
    assert "column names apply to CSV/TSV files, and every source is a run directory" in capsys.readouterr().err
