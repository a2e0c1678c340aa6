"""Checkpoint save/load: exact round trip, names not indices, clear errors, no pickle."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from riverbed.checkpoints import layout
from riverbed.checkpoints.state import (
    capture_rng,
    load_checkpoint,
    optimizer_tensors,
    read_state,
    restore_rng,
    save_checkpoint,
)
from riverbed.errors import CheckpointError
from riverbed.model import ModelConfig, build_model
from riverbed.config import OptimConfig
from riverbed.training.optim import build_optimizer


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # a ~100K model: one thread is several times faster on a busy machine


def _trained(seed: int = 0, steps: int = 2):
    model = build_model(ModelConfig.preset("tiny"), seed=seed)
    opt = build_optimizer(model, OptimConfig(lr=1e-2))
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randint(0, 256, (2, 16), generator=g)
        out = model(x, x)
        out.loss.backward()
        opt.step()
        opt.zero_grad()
    return model, opt


def test_round_trip_is_exact(tmp_path):
    model, opt = _trained()
    path = layout.checkpoint_dir(tmp_path, "main", 2)
    save_checkpoint(path, model, opt, {"step": 2, "tokens": 64})
    assert sorted(p.name for p in path.iterdir()) == sorted(
        [layout.HF_CONFIG_FILE, layout.MODEL_FILE, layout.OPTIMIZER_FILE, layout.RNG_FILE, layout.STATE_FILE])
    model2, opt2 = _trained(seed=1, steps=1)
    state = load_checkpoint(path, model2, opt2)
    assert state.step == 2 and state.tokens == 64
    for (k, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        assert torch.equal(a, b), k
    ta, _ = optimizer_tensors(model, opt)
    tb, _ = optimizer_tensors(model2, opt2)
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    assert layout.list_checkpoints(tmp_path, "main")[0].step == 2


def test_files_use_hf_and_parameter_names(tmp_path):
    model, opt = _trained()
    save_checkpoint(tmp_path / "c", model, opt, {"step": 2})
    weights = load_file(tmp_path / "c" / layout.MODEL_FILE)
    assert "model.embed_tokens.weight" in weights and "lm_head.weight" not in weights  # tied once
    moments = load_file(tmp_path / "c" / layout.OPTIMIZER_FILE)
    assert "model.layers.0.self_attn.q_proj.weight.exp_avg" in moments
    assert "model.norm.weight.exp_avg_sq" in moments
    assert float(moments["model.norm.weight.step"]) == 2.0
    assert set(moments) == {f"{n}.{k}" for n, _ in model.named_parameters() for k in ("exp_avg", "exp_avg_sq", "step")}


def test_rng_round_trip(tmp_path):
    model, opt = _trained()
    torch.manual_seed(123)
    save_checkpoint(tmp_path / "c", model, opt, {"step": 0})
    expected = torch.rand(3)
    torch.manual_seed(7)
    load_checkpoint(tmp_path / "c", model, rng=True)
    assert torch.equal(torch.rand(3), expected)
    restore_rng(capture_rng())  # captures and restores without error


@pytest.mark.parametrize("name", [layout.MODEL_FILE, layout.OPTIMIZER_FILE])
def test_truncated_file_is_named(tmp_path, name):
    model, opt = _trained()
    save_checkpoint(tmp_path / "c", model, opt, {"step": 2})
    f = tmp_path / "c" / name
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=name):
        load_checkpoint(tmp_path / "c", model, opt)


def test_corrupt_state_and_missing_dir(tmp_path):
    model, opt = _trained()
    save_checkpoint(tmp_path / "c", model, opt, {"step": 2})
    (tmp_path / "c" / layout.STATE_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="state.json"):
        load_checkpoint(tmp_path / "c", model)
    with pytest.raises(CheckpointError, match="nowhere"):
        load_checkpoint(tmp_path / "nowhere", model)


def test_wrong_model_is_named(tmp_path):
    model, opt = _trained()
    save_checkpoint(tmp_path / "c", model, opt, {"step": 2})
    other = build_model(ModelConfig.preset("tiny", d_ff=96), seed=0)
    with pytest.raises(CheckpointError, match="mlp"):
        load_checkpoint(tmp_path / "c", other)


def test_existing_checkpoint_is_not_overwritten(tmp_path):
    model, opt = _trained()
    save_checkpoint(tmp_path / "c", model, opt, {"step": 2})
    with pytest.raises(CheckpointError, match="already exists"):
        save_checkpoint(tmp_path / "c", model, opt, {"step": 3})
    assert read_state(tmp_path / "c").step == 2
    assert json.loads((tmp_path / "c" / layout.STATE_FILE).read_text())["format"] == "riverbed.checkpoint.v1"


def test_untied_model_saves_lm_head(tmp_path):
    model = build_model(ModelConfig.preset("tiny", tie_embeddings=False), seed=0)
    save_checkpoint(tmp_path / "c", model, None, {"step": 0})
    assert "lm_head.weight" in load_file(tmp_path / "c" / layout.MODEL_FILE)
    assert not (tmp_path / "c" / layout.OPTIMIZER_FILE).exists()
