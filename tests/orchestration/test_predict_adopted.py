"""The trajectory predictor on curves from the user's own stack: a run adopted from a real Trainer
output_dir and its trainer_state.json logs, through `predict fit`, `when` and `optimize`.

The Trainer run (conftest ``hf_output``: 48 constant-LR steps of a 20K-parameter model) has no decay
in it, so every law's fit must be refused as unreliable (exit 2, the reason named) and, kept with
--force, every answer built on it must say FORCED (text and JSON)."""

from __future__ import annotations

import json
import shutil

from riverbed.cli.main import main
from riverbed.orchestration.adopt import adopt


def test_predict_on_an_adopted_trainer_run_refuses_then_marks_a_forced_fit(hf_output, tmp_path, capsys):
    run = tmp_path / "run"
    adopt(hf_output, run)
    capsys.readouterr()
    assert main(["predict", "fit", str(run), "--law", "mpl"]) == 2
    err = capsys.readouterr().err
    assert "the mpl fit is unreliable" in err and "no fitted curve has a falling LR" in err and "Traceback" not in err
    assert main(["predict", "when", str(run), "--target", "0.9", "--no-progress"]) == 2
    assert "unreliable" in capsys.readouterr().err

    assert main(["predict", "when", str(run), "--target", "0.9", "--force", "--json", "--bootstrap", "4"]) == 0
    w = json.loads(capsys.readouterr().out)
    assert w["forced"] is True and w["trained"] == 48 and w["boot"] == 4
    assert main(["predict", "when", str(run), "--target", "0.9", "--force", "--bootstrap", "0", "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith("FORCED (unreliable fit kept by --force)")

    law = tmp_path / "law.json"
    assert main(["predict", "fit", str(run), "--law", "mpl", "--force", "-o", str(law)]) == 0
    capsys.readouterr()
    assert main(["predict", "optimize", str(law), "--steps", "96", "--warmup-steps", "4", "--peak-lr", "3e-3",
                 "--knots", "8", "--json"]) == 0
    opt = json.loads(capsys.readouterr().out)
    assert opt["forced"] is True and len(opt["lr"]) == 96 and opt["schedule"]["type"] == "tabulated"
    assert main(["predict", "optimize", str(law), "--steps", "96", "--warmup-steps", "4", "--peak-lr", "3e-3",
                 "--knots", "8", "--no-progress"]) == 0
    assert "FORCED" in capsys.readouterr().out


def test_trainer_logs_of_several_runs_keep_apart_in_the_fit(hf_output, tmp_path, capsys):
    """Every Trainer log is checkpoint-N/trainer_state.json: the curves are named by as many parent
    folders as tell them apart (not three curves all called checkpoint-48)."""
    logs = []
    for name in ("warm", "cold"):
        d = tmp_path / name / "checkpoint-48"
        d.mkdir(parents=True)
        shutil.copy(hf_output / "checkpoint-48" / "trainer_state.json", d)
        logs.append(str(d / "trainer_state.json"))
    assert main(["predict", "fit", *logs, "--law", "mpl", "--force", "--json"]) == 0
    names = [c["name"] for c in json.loads(capsys.readouterr().out)["curves"]]
    assert names == ["warm/checkpoint-48", "cold/checkpoint-48"]
