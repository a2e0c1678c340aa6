"""The PMA monitor: [pma] config, pma_eval_loss at each evaluation, exact after a resume."""

import dataclasses

import pytest
import torch
from safetensors.torch import load_file

import riverbed
from riverbed.checkpoints import layout
from riverbed.config import load_config_text
from riverbed.errors import ConfigError
from riverbed.merging.pma_snapshots import PMAConfig
from riverbed.training.pma_monitor import PMAMonitor
from riverbed.model import build_model
from riverbed.training import Callback, read_metrics, train_branch


class Probe(Callback):
    """Keeps the loop's context so the test can evaluate other models on the same held-out set."""

    ctx = None

    def on_eval(self, ctx, metrics):
        self.ctx = ctx


def _cfg(cfg, **pma):
    return dataclasses.replace(cfg, pma=PMAConfig(**pma), train=dataclasses.replace(cfg.train, ckpt_every=2, eval_every=2))


def _pma_rows(run):
    return [r for r in read_metrics(layout.metrics_path(run, "main")) if r["kind"] == "pma"]


def test_config_section_parses_and_validates():
    toml = '[model]\npreset = "tiny"\n[pma]\nevery = 200\ncount = 4\nmethod = "ema"\nalpha = 0.1\n'
    cfg = load_config_text(toml)
    assert cfg.pma == PMAConfig(every=200, count=4, method="ema", alpha=0.1)
    assert cfg.pma.weights(2) == pytest.approx((0.9, 0.1))
    assert load_config_text(cfg.to_toml()).pma == cfg.pma  # round-trips through the run's config.toml
    with pytest.raises(ConfigError, match="pma.window"):
        load_config_text(toml + "window = 3\n")
    with pytest.raises(ConfigError, match="pma.every=0"):
        PMAConfig(every=0)
    with pytest.raises(ConfigError, match="pma.method='median'"):
        PMAConfig(every=1, method="median")
    with pytest.raises(ConfigError, match="pma.unit='epochs'"):
        PMAConfig(every=1, unit="epochs")


def test_logs_the_merge_of_the_last_n_checkpoints(tmp_path, tiny_run_config):
    cfg = _cfg(tiny_run_config, every=2, count=3)
    probe = Probe()
    train_branch(cfg, tmp_path, until_step=8, callbacks=[probe], progress=False)
    rows = _pma_rows(tmp_path)
    assert [r["step"] for r in rows] == [6, 8]
    assert rows[0]["pma_positions"] == [2, 4, 6] and rows[1]["pma_positions"] == [4, 6, 8]
    assert all(r["pma_count"] == 3 and r["pma_method"] == "sma" for r in rows)
    # the same merge done from the checkpoints on disk by the streaming engine
    ckpts = [layout.checkpoint_dir(tmp_path, "main", s) for s in (2, 4, 6)]
    riverbed.merge(tmp_path / "merged", ckpts, "sma", verbose=False, progress=False)
    model = build_model(cfg.model, seed=0)
    model.load_state_dict(load_file(tmp_path / "merged" / "model.safetensors"))
    assert rows[0]["pma_eval_loss"] == pytest.approx(probe.ctx.evaluate(model), rel=1e-5)
    evals = {r["step"]: r["eval_loss"] for r in read_metrics(layout.metrics_path(tmp_path, "main")) if r["kind"] == "eval"}
    assert rows[0]["pma_eval_loss"] != evals[6]  # its own curve, not a copy of the raw one


def test_resume_gives_the_same_curve(tmp_path, tiny_run_config):
    cfg = _cfg(tiny_run_config, every=2, count=2, method="ema", alpha=0.5)
    train_branch(cfg, tmp_path / "a", until_step=8, progress=False)
    train_branch(cfg, tmp_path / "b", until_step=4, progress=False)
    train_branch(cfg, tmp_path / "b", until_step=8, progress=False)  # a new process: snapshots from disk
    a, b = _pma_rows(tmp_path / "a"), _pma_rows(tmp_path / "b")
    assert [r["step"] for r in a] == [4, 6, 8] == [r["step"] for r in b]
    assert [r["pma_eval_loss"] for r in a] == pytest.approx([r["pma_eval_loss"] for r in b], rel=1e-6)


def test_snapshots_are_float32_and_other_branches_are_left_alone(tiny_model_config):
    class Ctx:
        branch, step, tokens, run_dir = "main", 2, 0, None
        model = build_model(tiny_model_config, seed=0).to(torch.bfloat16)

    mon = PMAMonitor(PMAConfig(every=2, count=2))
    mon._started = True  # no run directory to refill from
    mon.on_step_end(Ctx)
    assert all(t.dtype == torch.float32 for t in mon.merged_state().values())
    Ctx.branch, Ctx.step = "decay_100", 4
    mon.on_step_end(Ctx)
    assert mon.snapshots.positions == [2]
