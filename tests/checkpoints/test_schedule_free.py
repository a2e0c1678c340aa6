"""Schedule-free AdamW: evaluated and checkpointed in eval mode, state by parameter name, exact resume."""

from __future__ import annotations

import json

import pytest
import torch

from riverbed.checkpoints import layout
from riverbed.checkpoints.schedule_free import FORMAT, eval_weights, is_schedule_free
from riverbed.checkpoints.state import read_safetensors, read_safetensors_metadata
from riverbed.config import OptimConfig
from riverbed.data import DataConfig, load_dataset
from riverbed.errors import CheckpointError, ConfigError
from riverbed.experiments.small import small_config, train_root
from riverbed.training.evaluate import HeldoutEvaluator
from riverbed.runs.metrics import read_metrics
from riverbed.training.optim import build_optimizer

pytest.importorskip("schedulefree")


def _cfg(name="schedulefree-adamw", **kw):
    return small_config(0, 1e-2, {"type": "warmup-stable", "warmup": 3}, optim=OptimConfig(lr=1e-2, name=name),
                        batch_size=4, ckpt_every=5, eval_every=5, eval_batches=2, **kw)


@pytest.fixture(scope="module")
def data():
    return load_dataset(DataConfig())


@pytest.fixture(scope="module")
def run(tmp_path_factory, data):
    cfg = _cfg()
    return cfg, train_root(cfg, tmp_path_factory.mktemp("sf") / "run", 10, data)


def test_config_names_the_optimizer():
    assert OptimConfig().name == "adamw"
    with pytest.raises(ConfigError, match="optim.name"):
        OptimConfig(name="sgd")
    opt = build_optimizer(torch.nn.Linear(3, 3), OptimConfig(name="schedulefree-adamw"))
    assert is_schedule_free(opt) and opt.param_groups[0]["train_mode"]  # ready to step
    assert not is_schedule_free(build_optimizer(torch.nn.Linear(3, 3), OptimConfig()))


def test_eval_weights_switch_and_restore_the_train_weights_bitwise():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = build_optimizer(model, OptimConfig(lr=0.1, name="schedulefree-adamw"))
    for _ in range(3):
        model(torch.randn(8, 4)).pow(2).sum().backward()
        opt.step()
        opt.zero_grad()
    y = model.weight.detach().clone()
    with eval_weights(model, opt) as train:
        x = model.weight.detach().clone()
        assert torch.equal(train["weight"], y) and not torch.equal(x, y)
    assert torch.equal(model.weight, y) and opt.param_groups[0]["train_mode"]


def test_logged_and_checkpointed_loss_is_the_eval_mode_one(run, data):
    cfg, r = run
    logged = {row["step"]: row["eval_loss"] for row in read_metrics(layout.metrics_path(r.path, "main"))
              if row["kind"] == "eval"}
    ev = HeldoutEvaluator(cfg, data)
    for step in (5, 10):
        ckpt = layout.checkpoint_dir(r.path, "main", step)
        x = read_safetensors(ckpt / layout.MODEL_FILE)
        assert ev.loss(ckpt) == logged[step]  # model.safetensors holds the eval-mode (averaged) weights
        opt = read_safetensors(ckpt / layout.OPTIMIZER_FILE)
        y = {k[: -len(".y")]: v for k, v in opt.items() if k.endswith(".y")}
        assert set(y) == {n for n in x if n in y} and len(y) > 0
        train_mode = ev.loss({**x, **y}, "train-mode weights")
        assert train_mode != pytest.approx(logged[step], abs=1e-6)  # what a train-mode evaluation would say


def test_optimizer_state_is_safetensors_by_parameter_name(run):
    _, r = run
    f = layout.checkpoint_dir(r.path, "main", 10) / layout.OPTIMIZER_FILE
    tensors, meta = read_safetensors(f), read_safetensors_metadata(f)
    assert meta["format"] == FORMAT
    keys = {k.rsplit(".", 1)[1] for k in tensors}
    assert keys == {"z", "exp_avg_sq", "y"} and "model.embed_tokens.weight.z" in tensors
    groups = json.loads(meta["param_groups"])
    assert groups[0]["k"] == 10 and groups[0]["weight_sum"] > 0


def test_resume_is_bitwise_exact(run, data, tmp_path):
    cfg, straight = run
    from riverbed.orchestration.drive import train_main

    part = train_root(cfg, tmp_path / "part", 5, data)
    train_main(cfg, part.path, part, until_step=10, progress=False, data=data)  # resumes from step 5
    for name in (layout.MODEL_FILE, layout.OPTIMIZER_FILE):
        a = read_safetensors(layout.checkpoint_dir(straight.path, "main", 10) / name)
        b = read_safetensors(layout.checkpoint_dir(part.path, "main", 10) / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_an_adamw_checkpoint_is_refused_by_a_schedule_free_config(run, data, tmp_path):
    from riverbed.checkpoints.state import load_checkpoint
    from riverbed.model import build_model

    adamw = _cfg("adamw")
    r = train_root(adamw, tmp_path / "adamw", 5, data)
    model = build_model(adamw.model)
    with pytest.raises(CheckpointError, match="optim.name"):
        load_checkpoint(layout.checkpoint_dir(r.path, "main", 5), model, build_optimizer(model, _cfg().optim))


def test_combinations_it_does_not_support_are_refused_before_training(data, tmp_path):
    from dataclasses import replace

    from riverbed.config import GuardConfig

    cfg = replace(_cfg(), guard=GuardConfig())
    with pytest.raises(ConfigError, match=r"\[guard\]"):
        train_root(cfg, tmp_path / "g", 2, data)
    assert not layout.list_checkpoints(tmp_path / "g", "main")
