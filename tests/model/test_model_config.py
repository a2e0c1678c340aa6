"""ModelConfig: validation, presets, exact parameter and FLOP counts."""

from __future__ import annotations

import pytest

from riverbed.errors import ConfigError
from riverbed.model import PRESETS, ModelConfig, build_model

# Hand-checked: tiny = 2 x (attn 64*64*2 + 64*32*2 + SwiGLU 3*64*160 + 2 norms of 64) + final norm 64
#                    + tied embedding 256*64 = 2*43136 + 64 + 16384.
GOLDEN_PARAMS = {
    "tiny": 102_720,
    "tiny-moe": 140_096,
    "1m": 1_037_696,
    "5m": 4_812_032,
    "20m": 19_110_400,
    "124m": 123_587_328,
}


def test_tiny_param_count_by_hand():
    layer = 64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 160 + 2 * 64
    assert ModelConfig.preset("tiny").n_params() == 2 * layer + 64 + 256 * 64


@pytest.mark.parametrize("name", sorted(GOLDEN_PARAMS))
def test_preset_param_counts(name):
    assert ModelConfig.preset(name).n_params() == GOLDEN_PARAMS[name]
    assert set(PRESETS) == set(GOLDEN_PARAMS)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"tie_embeddings": False}, {"n_kv_heads": 4}, {"n_experts": 4, "top_k": 1},
     {"n_experts": 3, "top_k": 2, "tie_embeddings": False}],
)
def test_n_params_equals_module_count(overrides):
    cfg = ModelConfig.preset("tiny", **overrides)
    model = build_model(cfg)
    assert cfg.n_params() == sum(p.numel() for p in model.parameters())
    emb = sum(p.numel() for n, p in model.named_parameters() if n in ("model.embed_tokens.weight", "lm_head.weight"))
    assert cfg.n_params(non_embedding=True) == cfg.n_params() - emb


def test_active_params_count_top_k_experts_only():
    moe = ModelConfig.preset("tiny-moe")  # 4 experts of 3*64*64, top-2
    expert = 3 * 64 * 64
    assert moe.n_params() - moe.n_params(active=True) == 2 * 2 * expert
    dense = ModelConfig.preset("tiny")
    assert dense.n_params(active=True) == dense.n_params()


def test_flops_per_token_golden():
    cfg = ModelConfig.preset("tiny")
    # 6 * (non-embedding 86336 + output projection 256*64) + 12 * 2 layers * 64 * T
    assert cfg.flops_per_token(128) == 6 * (86_336 + 16_384) + 12 * 2 * 64 * 128 == 812_928
    moe = ModelConfig.preset("tiny-moe")
    assert moe.flops_per_token(1) == 6 * (moe.n_params(non_embedding=True, active=True) + 256 * 64) + 12 * 2 * 64
    with pytest.raises(ConfigError, match="seq_len"):
        cfg.flops_per_token(0)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"d_model": 60, "n_heads": 8}, "d_model=60"),
        ({"n_kv_heads": 3}, "n_kv_heads=3"),
        ({"d_model": 12, "n_heads": 4}, "head_dim"),
        ({"n_layers": 0}, "n_layers"),
        ({"vocab_size": 2.5}, "vocab_size"),
        ({"tie_embeddings": "yes"}, "tie_embeddings"),
        ({"n_experts": 2, "top_k": 3}, "top_k=3"),
        ({"init_std": 0.0}, "init_std"),
        ({"aux_loss_coef": -1.0}, "aux_loss_coef"),
        ({"rope_theta": float("nan")}, "rope_theta"),
    ],
)
def test_validation_names_key_and_value(bad, match):
    with pytest.raises(ConfigError, match=match):
        ModelConfig.preset("tiny", **bad)


def test_from_dict_preset_and_unknown_key():
    cfg = ModelConfig.from_dict({"preset": "5m", "vocab_size": 512})
    assert (cfg.d_model, cfg.vocab_size) == (256, 512)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="model.hidden_size"):
        ModelConfig.from_dict({"hidden_size": 64})
    with pytest.raises(ConfigError, match="'huge'"):
        ModelConfig.preset("huge")
