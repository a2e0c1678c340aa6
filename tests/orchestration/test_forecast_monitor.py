"""The [forecast] monitor while a main branch trains: silent before a usable fit, then one row per evaluation."""

from __future__ import annotations

import pytest

from riverbed.cli.main import main
from riverbed.predict import LawFit
from riverbed.predict.fit import CurveResiduals
from riverbed.runs.metrics import read_metrics

PRIOR = LawFit("valley", dict(L0=1.5, A=2.0, alpha=0.3, B=0.05, lam=20.0, p=1.7, rho=1.8), 0.003,
               residuals=(CurveResiduals("calib", (10, 20), (3.0, 2.9), (3.01, 2.89)),))


def _train(tmp_path, tiny_toml, forecast: str, steps: int = 24):
    cfg = tmp_path / "f.toml"
    cfg.write_text(tiny_toml.replace("max_steps = 4", f"max_steps = {steps}").replace("ckpt_every = 2", "ckpt_every = 10")
                   + forecast)
    assert main(["train", str(cfg), "--run", str(tmp_path / "run"), "--no-progress"]) == 0
    return read_metrics(tmp_path / "run" / "branches" / "main" / "metrics.jsonl")


def test_forecast_rows_start_once_the_fit_is_usable(tmp_path, tiny_toml):
    prior = tmp_path / "prior.json"
    prior.write_text(PRIOR.to_json())
    rows = _train(tmp_path, tiny_toml, f'\n[forecast]\nprior = "{prior}"\nmin_points = 8\ndecay = 0.25\n')
    evals = [r["step"] for r in rows if r["kind"] == "eval"]
    fc = [r for r in rows if r["kind"] == "forecast"]
    # eval every 2 steps, warmup 2: the 8th point after the warmup is step 18; silent before it, then every eval
    assert [r["step"] for r in fc] == [s for s in evals if s >= 18]
    for r in fc:
        assert r["forecast_lo"] <= r["forecast_loss"] <= r["forecast_hi"]
        assert r["forecast_decay_steps"] == round(0.25 * r["step"]) and r["forecast_calibration"] == "prior"
        assert r["forecast_refit_s"] >= 0 and r["eval_s"] >= 0 and r["forecast_law"] == "valley"
    # The run report's loss figure draws them, each at the end of the decay it forecasts.
    from riverbed.reports.collect import collect_run
    from riverbed.reports.figures import loss_figure

    data = collect_run(tmp_path / "run", fit=False)
    (main_c,) = [c for c in data.curves if c.name == "main"]
    assert main_c.forecast_loss == [r["forecast_loss"] for r in fc]
    assert main_c.forecast_tokens == [r["tokens"] * r["forecast_end"] / r["step"] for r in fc]
    fig = loss_figure(data)
    assert any("forecast" in t.get_text() for t in fig.axes[0].get_legend().get_texts())


def test_no_calibration_means_no_rows(tmp_path, tiny_toml):
    rows = _train(tmp_path, tiny_toml, "\n[forecast]\nmin_points = 4\n", steps=16)
    assert not [r for r in rows if r["kind"] == "forecast"]
    assert [r for r in rows if r["kind"] == "eval"]


def test_bad_forecast_config_is_refused_naming_the_key(tmp_path, tiny_toml, capsys):
    cfg = tmp_path / "bad.toml"
    for text, key in (('\n[forecast]\ndecay = 1.5\n', "forecast.decay"), ('\n[forecast]\nshape = "zigzag"\n', "forecast.shape"),
                      ('\n[forecast]\nlaw = "chinchilla"\n', "forecast.law"),
                      (f'\n[forecast]\nprior = "{tmp_path / "missing.json"}"\n', "forecast.prior")):
        cfg.write_text(tiny_toml + text)
        assert main(["train", str(cfg), "--run", str(tmp_path / "r"), "--no-progress"]) == 2
        assert key in capsys.readouterr().err


def test_the_section_round_trips():
    from riverbed.config import RunConfig, load_config_text
    from riverbed.config.forecast import ForecastConfig

    text = "[model]\npreset = 'tiny'\n[forecast]\ndecay = 0.1\nshape = 'linear'\n"
    cfg = load_config_text(text)
    assert cfg.forecast == ForecastConfig(decay=0.1, shape="linear")
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(Exception, match="forecast.min_points"):
        ForecastConfig(min_points=2)
