"""`predict when`: the first budget whose decay reaches a target under the law, its compute, its refit spread."""

from __future__ import annotations

import json

import numpy as np

from riverbed.cli.main import main
from riverbed.predict.runs import fit_run
from riverbed.predict.when import _decayed, decay_reaching
from riverbed.runs import Run
from riverbed.schedules import schedule_from_spec


def test_the_answer_is_the_first_budget_reaching_the_target(predict_tree):
    fit = fit_run(predict_tree, "mpl", force=True)  # the 60-step tree's fit is unreliable (parameters at bounds)
    run = Run.open(predict_tree)
    main_s = schedule_from_spec(run.branch("main").schedule)
    peak = run.manifest.config["optim"]["lr"]
    lr = peak * np.array(main_s.values(600))

    def at(t):
        return _decayed(fit, lr, main_s, peak, 4, t, 0.2, "1-sqrt")

    target = at(100)
    w = decay_reaching(predict_tree, target, fit=fit, bootstrap=3)
    assert w.end is not None and w.end <= 100 and w.loss <= target
    assert at(w.end - 1) > target  # the first budget that reaches it
    assert w.fork == w.end - round(0.2 * w.end) and w.trained == 60 and w.horizon == 600
    main_rec = run.branch("main").final or run.branch("main").progress
    assert w.tokens == round(w.end * main_rec.tokens / main_rec.step)
    assert w.flops == w.end * main_rec.flops / main_rec.step
    assert w.boot == 3 and w.end_lo is not None
    never = decay_reaching(predict_tree, 0.01, fit=fit, bootstrap=0)
    assert never.end is None and never.to_dict()["reached"] is False


def test_cli_json_and_bad_target(predict_tree, capsys):
    assert main(["predict", "when", str(predict_tree), "--target", "3.0", "--law", "mpl", "--bootstrap", "2", "--json"]) == 2
    assert "the mpl fit is unreliable" in capsys.readouterr().err
    assert main(["predict", "when", str(predict_tree), "--target", "3.0", "--law", "mpl", "--bootstrap", "2", "--json", "--force"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) >= {"end", "fork", "tokens", "flops", "end_lo", "end_hi", "reached"}
    assert main(["predict", "when", str(predict_tree), "--target", "-1"]) == 2
    assert "--target" in capsys.readouterr().err
