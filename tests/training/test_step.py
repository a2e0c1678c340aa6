"""train_step alone: one optimizer update from a batch, no loop, no run directory."""

from __future__ import annotations

import copy

import pytest
import torch

from riverbed.model import build_model
from riverbed.training.step import train_step


def _batch(cfg, rows=4, seq=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, cfg.vocab_size, (rows, seq), generator=g)
    return x, torch.roll(x, -1, dims=1)


def test_train_step_is_one_adamw_update_of_the_mean_batch_gradient(tiny_model_config):
    model = build_model(tiny_model_config, seed=0)
    ref = copy.deepcopy(model)
    opt = torch.optim.AdamW(model.parameters(), lr=0.0, weight_decay=0.1)
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-3, weight_decay=0.1)
    x, y = _batch(tiny_model_config)
    # two micro-batches of two rows: the gradient must be the full batch's mean gradient
    out = train_step(model, opt, x, y, lr=1e-3, micro=2, accum=2, clip=0.0)
    assert opt.param_groups[0]["lr"] == 1e-3  # the step sets the LR it is given
    full = ref(x, y)
    full.loss.backward()
    params = [p for p in ref.parameters() if p.requires_grad]
    norm = torch.nn.utils.get_total_norm([p.grad for p in params])
    ref_opt.step()
    assert out.loss.item() == pytest.approx(full.loss.item(), rel=1e-5)
    assert out.grad_norm.item() == pytest.approx(norm.item(), rel=1e-4)
    for (name, a), b in zip(model.named_parameters(), ref.parameters()):
        assert torch.allclose(a, b, atol=1e-6, rtol=0), name
    assert all(p.grad is None for p in model.parameters())  # gradients zeroed for the next step


def test_train_step_clips_and_is_deterministic(tiny_model_config):
    x, y = _batch(tiny_model_config, seed=1)
    runs = []
    for _ in range(2):
        model = build_model(tiny_model_config, seed=3)
        opt = torch.optim.AdamW(model.parameters(), lr=0.0)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        out = train_step(model, opt, x, y, lr=1e-2, micro=4, accum=1, clip=1e-3)
        assert out.grad_norm.item() > 1e-3  # the norm before clipping is returned
        assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
        runs.append(model.state_dict())
    for k in runs[0]:
        assert torch.equal(runs[0][k], runs[1][k]), k
