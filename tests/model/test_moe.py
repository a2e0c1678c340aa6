"""Mixtral-style MoE: top-k routing and the Switch load-balancing loss."""

from __future__ import annotations

import pytest
import torch

from riverbed.model import build_model
from riverbed.model.moe import SparseMoeBlock, load_balancing_loss


def test_balance_loss_golden_values():
    # Uniform router: E * sum_i F_i / E = sum_i F_i = top_k, whatever the dispatch.
    probs = torch.full((8, 4), 0.25)
    top = torch.tensor([[0, 1]] * 8)
    assert float(load_balancing_loss(probs, top, 4)) == pytest.approx(2.0)
    # Collapsed router (top-1): every token to expert 0 with probability 1 -> E.
    collapsed = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 8)
    assert float(load_balancing_loss(collapsed, torch.zeros(8, 1, dtype=torch.long), 4)) == pytest.approx(4.0)
    # Hand-computed: F = (0.5, 0.5), P = (0.7, 0.3) -> 2 * (0.35 + 0.15) = 1.0
    p = torch.tensor([[0.9, 0.1], [0.5, 0.5]])
    assert float(load_balancing_loss(p, torch.tensor([[0], [1]]), 2)) == pytest.approx(1.0)


def test_routes_each_token_to_top_k_experts():
    torch.manual_seed(0)
    block = SparseMoeBlock(d_model=8, d_ff=16, n_experts=4, top_k=2)
    x = torch.randn(5, 8)
    y, _ = block(x)
    probs = torch.softmax(block.gate(x), dim=-1)
    w, idx = torch.topk(probs, 2, dim=-1)
    w = w / w.sum(-1, keepdim=True)
    expected = torch.stack([
        sum(w[t, s] * block.experts[int(idx[t, s])](x[t]) for s in range(2)) for t in range(5)
    ])
    torch.testing.assert_close(y, expected)


def test_model_aux_loss_is_coef_times_layer_mean(tiny_moe_config):
    cfg = tiny_moe_config.replace(aux_loss_coef=0.5)
    model = build_model(cfg, seed=0)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.block_sparse_moe.gate.weight.zero_()  # uniform router
    out = model(torch.randint(0, 256, (2, 16)))
    assert float(out.aux_loss) == pytest.approx(0.5 * cfg.top_k)


def test_block_balance_loss_tends_to_n_experts_when_collapsed():
    block = SparseMoeBlock(d_model=8, d_ff=16, n_experts=4, top_k=1)
    x = torch.rand(32, 8, generator=torch.Generator().manual_seed(0)) + 0.5  # positive inputs
    with torch.no_grad():
        block.gate.weight.zero_()
        block.gate.weight[0] = 10.0  # expert 0's logit >= 20 for every token
    _, balance = block(x)
    assert 3.99 < float(balance) <= 4.0


def test_aux_loss_matches_transformers_single_layer(tiny_moe_config):
    mixtral = pytest.importorskip("transformers.models.mixtral.modeling_mixtral")
    cfg = tiny_moe_config.replace(n_layers=1)
    model = build_model(cfg, seed=3)
    x = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0))
    h = model.model.layers[0]
    emb = model.model.embed_tokens(x)
    hidden = emb + h.self_attn(h.input_layernorm(emb), model.rope_cos[:16], model.rope_sin[:16])
    logits = h.block_sparse_moe.gate(h.post_attention_layernorm(hidden)).reshape(-1, cfg.n_experts)
    ref = mixtral.load_balancing_loss_func((logits,), cfg.n_experts, cfg.top_k)
    torch.testing.assert_close(model(x).aux_loss, cfg.aux_loss_coef * ref)
