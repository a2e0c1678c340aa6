"""Hugging Face names and config: ``config.json`` <-> :class:`ModelConfig`, and the tensor
names and shapes of a riverbed ``state_dict`` (which already uses HF tensor names). Dense models
are ``LlamaForCausalLM``, MoE models ``MixtralForCausalLM``. Reading and writing the files is
riverbed.checkpoints.hf.

>>> from riverbed.model import ModelConfig
>>> cfg = ModelConfig.preset("tiny")
>>> config_from_hf(hf_config_dict(cfg)) == cfg
True
"""

from __future__ import annotations

from typing import Any

import torch

from riverbed.errors import CheckpointError, ConfigError
from riverbed.model.config import ModelConfig


def hf_config_dict(cfg: ModelConfig, dtype: str = "float32") -> dict[str, Any]:
    """The ``config.json`` of the equivalent ``LlamaForCausalLM`` / ``MixtralForCausalLM``.

    >>> hf_config_dict(ModelConfig.preset("tiny"))["architectures"]
    ['LlamaForCausalLM']
    """
    d: dict[str, Any] = {
        "architectures": ["MixtralForCausalLM" if cfg.is_moe else "LlamaForCausalLM"],
        "model_type": "mixtral" if cfg.is_moe else "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.d_ff,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads,
        "head_dim": cfg.head_dim,
        "max_position_embeddings": cfg.max_seq_len,
        "rms_norm_eps": cfg.norm_eps,
        # transformers < 5 reads rope_theta, >= 5 rope_parameters; write both.
        "rope_theta": cfg.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "hidden_act": "silu",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "tie_word_embeddings": cfg.tie_embeddings,
        "initializer_range": cfg.init_std,
        "bos_token_id": None,
        "eos_token_id": None,
        "pad_token_id": None,
        "use_cache": True,
        # transformers < 5 reads torch_dtype, >= 5 dtype.
        "torch_dtype": dtype,
        "dtype": dtype,
    }
    if cfg.is_moe:
        d.update(
            num_local_experts=cfg.n_experts,
            num_experts_per_tok=cfg.top_k,
            router_aux_loss_coef=cfg.aux_loss_coef,
            output_router_logits=False,
            router_jitter_noise=0.0,
            sliding_window=None,
        )
    else:
        d["mlp_bias"] = False
        d["pretraining_tp"] = 1
    return d


def config_from_hf(d: dict[str, Any], source: str = "config.json") -> ModelConfig:
    """Inverse of :func:`hf_config_dict` for Llama and Mixtral configs; rejects what riverbed cannot run."""
    model_type = d.get("model_type")
    if model_type not in ("llama", "mixtral"):
        raise CheckpointError(f"{source}: model_type={model_type!r} is not 'llama' or 'mixtral'")
    if d.get("hidden_act", "silu") != "silu":
        raise CheckpointError(f"{source}: hidden_act={d['hidden_act']!r} is not 'silu'")
    for key in ("attention_bias", "mlp_bias"):
        if d.get(key):
            raise CheckpointError(f"{source}: {key}=true is not supported")
    rope = d.get("rope_parameters") or d.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise CheckpointError(f"{source}: rope scaling {rope!r} is not supported (only default RoPE)")
    try:
        n_heads = d["num_attention_heads"]
        hidden = d["hidden_size"]
        if d.get("head_dim") not in (None, hidden // n_heads):
            raise CheckpointError(f"{source}: head_dim={d['head_dim']} != hidden_size/num_attention_heads")
        fields: dict[str, Any] = dict(
            vocab_size=d["vocab_size"],
            d_model=hidden,
            n_layers=d["num_hidden_layers"],
            n_heads=n_heads,
            n_kv_heads=d.get("num_key_value_heads") or n_heads,
            d_ff=d["intermediate_size"],
            max_seq_len=d.get("max_position_embeddings", 2048),
            rope_theta=float(rope.get("rope_theta", d.get("rope_theta", 10000.0))),
            norm_eps=float(d.get("rms_norm_eps", 1e-6)),
            tie_embeddings=bool(d.get("tie_word_embeddings", False)),
            init_std=float(d.get("initializer_range", 0.02)),
        )
    except KeyError as exc:
        raise CheckpointError(f"{source}: missing key {exc.args[0]!r}") from None
    if model_type == "mixtral":
        fields.update(
            n_experts=d.get("num_local_experts", 8),
            top_k=d.get("num_experts_per_tok", 2),
            aux_loss_coef=float(d.get("router_aux_loss_coef", 0.001)),
        )
    try:
        return ModelConfig(**fields)
    except ConfigError as exc:
        raise CheckpointError(f"{source}: {exc}") from None


def hf_tensor_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor name of a riverbed / HF checkpoint for ``cfg`` with its shape."""
    d, hd, f = cfg.d_model, cfg.head_dim, cfg.d_ff
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (cfg.vocab_size, d)}
    for i in range(cfg.n_layers):
        p = f"model.layers.{i}."
        shapes[p + "self_attn.q_proj.weight"] = (cfg.n_heads * hd, d)
        shapes[p + "self_attn.k_proj.weight"] = (cfg.n_kv_heads * hd, d)
        shapes[p + "self_attn.v_proj.weight"] = (cfg.n_kv_heads * hd, d)
        shapes[p + "self_attn.o_proj.weight"] = (d, cfg.n_heads * hd)
        if cfg.is_moe:
            shapes[p + "block_sparse_moe.gate.weight"] = (cfg.n_experts, d)
            for j in range(cfg.n_experts):
                e = f"{p}block_sparse_moe.experts.{j}."
                shapes[e + "w1.weight"], shapes[e + "w2.weight"], shapes[e + "w3.weight"] = (f, d), (d, f), (f, d)
        else:
            shapes[p + "mlp.gate_proj.weight"] = (f, d)
            shapes[p + "mlp.up_proj.weight"] = (f, d)
            shapes[p + "mlp.down_proj.weight"] = (d, f)
        shapes[p + "input_layernorm.weight"] = (d,)
        shapes[p + "post_attention_layernorm.weight"] = (d,)
    shapes["model.norm.weight"] = (d,)
    if not cfg.tie_embeddings:
        shapes["lm_head.weight"] = (cfg.vocab_size, d)
    return shapes


def check_state_dict(cfg: ModelConfig, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError naming the first missing, unexpected or mis-shaped tensor."""
    want = hf_tensor_shapes(cfg)
    for name in want:
        if name not in state_dict:
            raise CheckpointError(f"{source}: missing tensor {name}")
    for name, t in state_dict.items():
        if name not in want:
            raise CheckpointError(f"{source}: unexpected tensor {name}")
        if tuple(t.shape) != want[name]:
            raise CheckpointError(f"{source}: tensor {name} has shape {tuple(t.shape)}, expected {want[name]}")
