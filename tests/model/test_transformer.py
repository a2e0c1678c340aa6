"""The decoder: shapes, causality, seeded determinism, HF names, learning."""

from __future__ import annotations

import pytest
import torch

from riverbed.errors import ConfigError
from riverbed.model import ModelOutput, build_model


def test_forward_shapes_and_loss(tiny_model_config):
    model = build_model(tiny_model_config, seed=0)
    x = torch.randint(0, 256, (3, 17))
    out = model(x)
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (3, 17, 256) and out.loss is None
    assert out.aux_loss.shape == () and float(out.aux_loss) == 0.0
    out = model(x, targets=x)
    manual = torch.nn.functional.cross_entropy(out.logits.reshape(-1, 256), x.reshape(-1))
    torch.testing.assert_close(out.loss, manual)


def test_initial_loss_is_near_uniform(tiny_model_config):
    # init_std 0.02 -> logits ~ 0: loss ~ ln(256) = 5.545
    model = build_model(tiny_model_config, seed=0)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 256, (2, 4, 32), generator=g)
    loss = float(model(x, targets=y).loss)
    assert abs(loss - 5.545) < 0.05


def test_hf_llama_parameter_names(tiny_model_config):
    names = list(build_model(tiny_model_config).state_dict())
    assert names[:5] == [
        "model.embed_tokens.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.k_proj.weight",
        "model.layers.0.self_attn.v_proj.weight",
        "model.layers.0.self_attn.o_proj.weight",
    ]
    assert "model.layers.1.mlp.down_proj.weight" in names and "model.norm.weight" in names
    assert "lm_head.weight" not in names  # tied: HF stores only the embedding
    untied = build_model(tiny_model_config.replace(tie_embeddings=False)).state_dict()
    assert "lm_head.weight" in untied


def test_causal_future_tokens_do_not_change_past(tiny_model_config, tiny_moe_config):
    for cfg in (tiny_model_config, tiny_moe_config):
        model = build_model(cfg, seed=0).eval()
        g = torch.Generator().manual_seed(1)
        a = torch.randint(0, 256, (2, 24), generator=g)
        b = a.clone()
        b[:, 10:] = torch.randint(0, 256, (2, 14), generator=g)
        with torch.no_grad():
            la, lb = model(a).logits, model(b).logits
        torch.testing.assert_close(la[:, :10], lb[:, :10], rtol=0, atol=1e-6)
        assert (la[:, 10:] - lb[:, 10:]).abs().max() > 1e-4


def test_same_seed_same_weights(tiny_model_config):
    a, b = build_model(tiny_model_config, seed=7).state_dict(), build_model(tiny_model_config, seed=7).state_dict()
    c = build_model(tiny_model_config, seed=8).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["model.embed_tokens.weight"], c["model.embed_tokens.weight"])


def test_init_statistics(tiny_model_config):
    sd = build_model(tiny_model_config, seed=0).state_dict()
    assert torch.equal(sd["model.norm.weight"], torch.ones(64))
    std_q = float(sd["model.layers.0.self_attn.q_proj.weight"].std())
    std_o = float(sd["model.layers.0.self_attn.o_proj.weight"].std())
    assert abs(std_q - 0.02) < 0.002
    assert abs(std_o - 0.02 / 2.0) < 0.001  # scaled by 1/sqrt(2 * n_layers) = 1/2


def test_golden_init_values(tiny_model_config):
    # Pins the init recipe (CPU generator, parameter order, output-projection scaling): a change
    # here silently changes every run's weights.
    sd = build_model(tiny_model_config, seed=0).state_dict()
    torch.testing.assert_close(
        sd["model.embed_tokens.weight"].flatten()[:4],
        torch.tensor([-0.0225167964, -0.0230472032, -0.0050115716, -0.0086775757]),
    )
    torch.testing.assert_close(
        sd["model.layers.1.mlp.down_proj.weight"].flatten()[:2], torch.tensor([-0.0020230133, 0.0018696898])
    )


def test_training_steps_reduce_loss(tiny_model_config, tiny_moe_config):
    x = torch.arange(33).remainder(7).repeat(2, 1)  # a periodic sequence is learnable in a few steps
    for cfg in (tiny_model_config, tiny_moe_config):
        model = build_model(cfg, seed=0)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        first = None
        for _ in range(8):
            out = model(x[:, :-1], targets=x[:, 1:])
            (out.loss + out.aux_loss).backward()
            opt.step()
            opt.zero_grad()
            first = first if first is not None else float(out.loss)
        assert float(out.loss) < 0.7 * first


def test_sequence_longer_than_max_seq_len_is_a_config_error(tiny_model_config):
    model = build_model(tiny_model_config)
    with pytest.raises(ConfigError, match="max_seq_len=64"):
        model(torch.zeros(1, 65, dtype=torch.long))
