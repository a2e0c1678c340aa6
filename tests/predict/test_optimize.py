"""The schedule optimiser: its constraint, that it beats the baselines under the law, its CLI, and that its spec trains."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest

from riverbed.cli.main import main
from riverbed.predict import LawFit, PredictError
from riverbed.predict.fit import CurveResiduals
from riverbed.predict.optimize import best_baselines, final_loss, optimize_schedule
from riverbed.schedules import Tabulated, schedule_from_spec

PARAMS = {
    "mpl": dict(L0=2.0, A=0.5, alpha=0.45, B=0.4, C=0.3, beta=0.6, gamma=0.6),
    "valley": dict(L0=2.0, A=0.5, alpha=0.45, B=0.05, lam=20.0, p=1.7, rho=1.8),
}
STEPS, WARMUP, PEAK, MIN = 400, 20, 3e-3, 3e-4


def _fit(law: str) -> LawFit:
    res = CurveResiduals("calib", (100, 200, 300, 400), (3.0, 2.8, 2.7, 2.6), (3.003, 2.797, 2.702, 2.598))
    return LawFit(law, PARAMS[law], PEAK, None, (res,))


@pytest.mark.parametrize("law", ["mpl", "valley"])
def test_the_optimum_never_rises_after_warmup_and_beats_every_baseline(law):
    fit = _fit(law)
    opt = optimize_schedule(fit, STEPS, warmup=WARMUP, peak_lr=PEAK, min_lr=MIN, knots=32, max_iter=60)
    m = opt.multipliers
    assert m.size == STEPS
    np.testing.assert_allclose(m[:WARMUP], (np.arange(WARMUP) + 1) / WARMUP)  # riverbed's linear warmup
    post = m[WARMUP:]
    assert np.all(np.diff(post) <= 0) and post.max() <= 1.0 and post.min() >= MIN / PEAK - 1e-12
    # The reported loss is the law's on exactly the written schedule.
    assert opt.final_loss == pytest.approx(final_loss(fit, PEAK * np.array(opt.schedule().values(STEPS)), WARMUP), rel=1e-12)
    names = {b.name for b in opt.baselines}
    assert names == {"cosine", "wsd-linear", "wsd-1-sqrt"}
    for b in opt.baselines:
        assert opt.final_loss <= b.final_loss, b.name
    assert opt.lo <= opt.final_loss <= opt.hi


def test_baselines_are_at_their_best_decay_fraction():
    fit = _fit("mpl")
    base = {b.name: b for b in best_baselines(fit, STEPS, WARMUP, PEAK, MIN, fractions=(0.1, 0.2, 0.4))}
    for frac in (0.1, 0.2, 0.4):
        d = round(frac * (STEPS - WARMUP))
        s = schedule_from_spec({"type": "wsd", "warmup": WARMUP, "stable": STEPS - WARMUP - d, "decay": d, "shape": "linear",
                                "min_ratio": MIN / PEAK})
        assert base["wsd-linear"].final_loss <= final_loss(fit, PEAK * np.array(s.values(STEPS)), WARMUP) + 1e-15


def test_bad_input_names_the_flag():
    fit = _fit("mpl")
    for kw, flag in ((dict(steps=1), "--steps"), (dict(warmup=400), "--warmup-steps"), (dict(peak_lr=-1.0), "--peak-lr"),
                     (dict(min_lr=1.0), "--min-lr")):
        args = dict(steps=STEPS, warmup=WARMUP, peak_lr=PEAK, min_lr=MIN) | kw
        with pytest.raises(PredictError, match=flag):
            optimize_schedule(fit, args.pop("steps"), **args)


def test_cli_json_and_spec_file(tmp_path, capsys):
    law = tmp_path / "law.json"
    law.write_text(_fit("mpl").to_json())
    out = tmp_path / "s.toml"
    assert main(["predict", "optimize", str(law), "--steps", "400", "--warmup-steps", "20", "--peak-lr", "3e-3",
                 "--min-lr", "3e-4", "--knots", "16", "--json", "-o", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) >= {"final_loss", "lr", "schedule", "baselines"} and len(doc["lr"]) == 400
    assert doc["final_loss"]["lo"] <= doc["final_loss"]["value"] <= doc["final_loss"]["hi"]
    assert all(doc["final_loss"]["value"] <= b["final_loss"] for b in doc["baselines"].values())
    spec = tomllib.loads(out.read_text())["schedule"]
    assert spec == doc["schedule"] and isinstance(schedule_from_spec(spec), Tabulated)
    assert main(["predict", "optimize", str(law), "--steps", "400", "--peak-lr", "3e-3", "-o", str(law)]) == 2
    assert main(["predict", "optimize", str(tmp_path / "missing.json"), "--steps", "400", "--peak-lr", "3e-3"]) == 2
    assert json.loads(law.read_text())["law"] == "mpl"  # the input is untouched


def test_the_written_spec_trains_with_its_lrs(tmp_path, tiny_toml):
    from riverbed.toml_writer import dumps_toml
    from riverbed.runs.metrics import read_metrics

    table = [0.5, 1.0, 1.0, 0.9, 0.6, 0.3]
    base = tiny_toml.split("[schedule]")[0] + "[train]" + tiny_toml.split("[train]")[1]
    cfg = tmp_path / "opt.toml"
    cfg.write_text(base.replace("max_steps = 4", "max_steps = 6") + dumps_toml({"schedule": {"type": "tabulated", "table": table, "warmup": 2}}))
    assert main(["train", str(cfg), "--run", str(tmp_path / "run"), "--no-progress"]) == 0
    rows = [r for r in read_metrics(tmp_path / "run" / "branches" / "main" / "metrics.jsonl") if r.get("kind") == "train"]
    assert [r["lr"] for r in rows] == pytest.approx([0.003 * v for v in table])


def test_the_optimum_trains_as_a_branch_of_a_run_with_the_same_warmup_and_peak(run_copy):
    """`predict optimize` -> `riverbed branch --schedule`: the tiny run (warmup 2, LR 3e-3, checkpoints 2
    and 4) branches onto the optimum from the newest checkpoint before it leaves the peak, and the
    branch's recorded multipliers are the optimum's from the fork on."""
    from riverbed.runs import Run
    from riverbed.runs.fork import departure_step

    fit = _fit("mpl")
    opt = optimize_schedule(fit, 12, warmup=2, peak_lr=PEAK, min_lr=MIN, knots=8, max_iter=20)
    doc = run_copy / "opt.json"
    doc.write_text(json.dumps(opt.to_dict()))
    r = run_copy / "r"
    assert main(["branch", str(r), "--schedule", str(doc), "--name", "opt", "--no-progress"]) == 0
    b = Run.open(r).manifest.branches["opt"]
    leaves = departure_step(schedule_from_spec({"type": "warmup-stable", "warmup": 2}), opt.schedule(), 12)
    assert b.status == "finished" and b.fork.step == max(s for s in (2, 4) if s <= leaves) and b.final.step == 12
    assert schedule_from_spec(b.schedule).values(12)[b.fork.step:] == pytest.approx(list(opt.multipliers[b.fork.step:]), abs=1e-12)
