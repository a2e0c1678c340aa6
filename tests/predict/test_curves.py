"""Curves from a user's CSV logs: LR interpolation, warmup rules, bad input; the law file's JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from riverbed.predict import LawFit, PredictError, curve_from_rows, fit_curve_law, read_curve_csv
from riverbed.predict.laws import MPLTerms


def _write(path, rows, header="step,lr,loss"):
    path.write_text(header + "\n" + "\n".join(",".join(str(v) for v in r) for r in rows) + "\n")
    return path


def test_lr_is_interpolated_between_rows_and_warmup_defaults_to_the_first_row(tmp_path):
    c = read_curve_csv(_write(tmp_path / "a.csv", [(4, 1.0, 3.0), (8, 0.6, 2.9), (12, 0.2, 2.8)]))
    assert c.warmup == 4
    np.testing.assert_allclose(c.lr, [0.25, 0.5, 0.75, 1.0, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    assert c.steps.tolist() == [4, 8, 12]
    assert c.loss.tolist() == [3.0, 2.9, 2.8]


def test_warmup_steps_and_schedule_override_the_default(tmp_path):
    p = _write(tmp_path / "a.csv", [(6, 1.0, 3.0), (8, 1.0, 2.9)])
    c = read_curve_csv(p, warmup_steps=2)
    np.testing.assert_allclose(c.lr[:6], [0.5, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert c.warmup == 2 and c.steps.tolist() == [6, 8]
    assert read_curve_csv(p, warmup_steps=8).steps.tolist() == [8]  # rows inside the warmup are not law points
    c = read_curve_csv(p, schedule={"type": "warmup-stable", "warmup": 4})
    np.testing.assert_allclose(c.lr[:6], [0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    assert c.warmup == 4


@pytest.mark.parametrize("header,rows,match", [
    ("step,loss", [(1, 2.0)], "missing column.*lr"),
    ("step,lr,loss", [(1, "x", 2.0)], "line 2"),
    ("step,lr,loss", [(5, 1.0, 2.0), (5, 1.0, 2.0)], "strictly increase"),
    ("step,lr,loss", [(5, 1.0, "")], "no loss values after the warmup"),
])
def test_bad_csv_names_the_file_and_the_problem(tmp_path, header, rows, match):
    p = _write(tmp_path / "bad.csv", rows, header)
    with pytest.raises(PredictError, match=match) as exc:
        read_curve_csv(p)
    assert "bad.csv" in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(PredictError, match="no such file"):
        read_curve_csv(tmp_path / "nope.csv")


def _synthetic(name, lr, W, every=5):
    steps = np.arange(W + every, lr.size + 1, every)
    p = dict(L0=2.0, A=0.5, alpha=0.45, B=0.4, C=0.3, beta=0.6, gamma=0.6)
    loss = MPLTerms.build(lr, steps, W).loss(**p)
    return curve_from_rows(name, steps, lr[steps - 1], loss, warmup_steps=W)


def test_law_file_round_trips_exactly_and_predicts_the_same():
    lr = np.r_[np.linspace(0.1, 1, 10), np.ones(150), np.linspace(1, 0.1, 141)[1:]]
    fit = fit_curve_law([_synthetic("a", lr, 10), _synthetic("b", np.r_[lr[:160], np.full(140, 0.4)], 10)], "mpl")
    text = fit.to_json()
    json.loads(text)  # strict JSON
    back = LawFit.from_json(text)
    assert back == fit
    c = _synthetic("a", lr, 10)
    np.testing.assert_array_equal(back.predict(c), fit.predict(c))


def test_too_few_points_and_bad_law_files():
    lr = np.r_[np.linspace(0.1, 1, 10), np.ones(20)]
    few = curve_from_rows("short", [15, 20, 25], lr[[14, 19, 24]], [3.0, 2.9, 2.8], warmup_steps=10)
    with pytest.raises(PredictError, match="too few eval points.*short"):
        fit_curve_law([few], "mpl")
    with pytest.raises(PredictError, match="--law"):
        fit_curve_law([few], "chinchilla")
    with pytest.raises(PredictError, match="x.json: not a riverbed law file"):
        LawFit.from_json('{"format": "other"}', where="x.json")
    with pytest.raises(PredictError, match="params"):
        LawFit.from_json('{"format": "riverbed.predict.law/1", "law": "mpl", "params": {"L0": 1}}')


def test_a_constant_lr_alone_cannot_calibrate_the_decay_terms():
    lr = np.r_[np.linspace(0.1, 1, 10), np.ones(100)]
    steps = np.arange(15, 110, 5)
    c = curve_from_rows("flat", steps, lr[steps], 3.0 - 0.001 * steps, warmup_steps=10)
    for law, decay_terms in (("tissue", "C"), ("mpl", "B, C, beta, gamma")):
        fit = fit_curve_law([c], law)
        d = fit.diagnostics
        assert d.verdict == "unreliable" and not d.has_decay
        assert set(decay_terms.split(", ")) <= set(d.unpinned)
        assert any("no fitted curve has a falling LR" in r for r in d.reasons)
        with pytest.raises(PredictError, match=f"the {law} fit is unreliable: .*no fitted curve has a falling LR"):
            fit.require_usable()
