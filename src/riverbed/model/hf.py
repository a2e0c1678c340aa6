"""Hugging Face interchange: ``config.json`` + ``model.safetensors`` that ``transformers`` loads.

A riverbed ``state_dict`` already uses HF tensor names, so export is a config translation plus an
atomic write. Dense models are ``LlamaForCausalLM``, MoE models ``MixtralForCausalLM`` in the
checkpoint layout ``save_pretrained`` writes (per-expert ``w1/w2/w3``; transformers >= 5 fuses the
experts in memory on load). Tied embeddings: the file holds only ``model.embed_tokens.weight`` and
``config.json`` says ``"tie_word_embeddings": true`` (safetensors refuses shared tensors).

>>> import tempfile, pathlib
>>> from riverbed.model import ModelConfig, build_model
>>> cfg = ModelConfig.preset("tiny")
>>> out = pathlib.Path(tempfile.mkdtemp()) / "hf"
>>> _ = export_hf(cfg, build_model(cfg).state_dict(), out)
>>> load_hf(out)[0] == cfg
True
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from riverbed.checkpoints.atomic import atomic_dir
from riverbed.checkpoints.strict_json import read_json
from riverbed.errors import CheckpointError, ConfigError
from riverbed.merging.formats import read_index
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


def export_hf(cfg: ModelConfig, state_dict: dict[str, torch.Tensor], out_dir: str | os.PathLike[str],
              *, overwrite: bool = False) -> Path:
    """Write ``out_dir/{config.json, model.safetensors}`` atomically (temporary dir, then rename)."""
    out = Path(out_dir)
    sd = {k: v for k, v in state_dict.items() if not (cfg.tie_embeddings and k == "lm_head.weight")}
    check_state_dict(cfg, sd, "state_dict")
    if out.exists() and not overwrite:
        raise CheckpointError(f"{out}: already exists (pass overwrite=True to replace it)")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in sd.items()}
    dtype = str(tensors["model.embed_tokens.weight"].dtype).removeprefix("torch.")
    with atomic_dir(out, overwrite=overwrite) as tmp:
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(hf_config_dict(cfg, dtype), indent=2) + "\n", encoding="utf-8")
    return out


_FUSED = re.compile(r"^(model\.layers\.\d+\.)mlp\.experts\.(gate_up_proj|down_proj)$")


def _unfuse_mixtral(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept transformers-5 in-memory names (``mlp.gate``, fused ``mlp.experts.gate_up_proj``)."""
    out: dict[str, torch.Tensor] = {}
    for name, t in sd.items():
        m = _FUSED.match(name)
        if m is None:
            out[re.sub(r"^(model\.layers\.\d+\.)mlp\.gate\.weight$", r"\1block_sparse_moe.gate.weight", name)] = t
            continue
        prefix, kind = m.groups()
        for j in range(t.shape[0]):
            e = f"{prefix}block_sparse_moe.experts.{j}."
            if kind == "down_proj":
                out[e + "w2.weight"] = t[j]
            else:
                w1, w3 = t[j].chunk(2, dim=0)
                out[e + "w1.weight"], out[e + "w3.weight"] = w1, w3
    return out


def load_hf(hf_dir: str | os.PathLike[str]) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Read an HF Llama/Mixtral directory (single or sharded safetensors) as (cfg, riverbed state_dict)."""
    root = Path(hf_dir)
    cfg_path = root / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{cfg_path}: not found (expected a Hugging Face model directory)")
    cfg = config_from_hf(read_json(cfg_path, CheckpointError), str(cfg_path))
    index = root / "model.safetensors.index.json"
    if index.is_file():
        # read_index refuses shard names that leave the directory (``../x``, ``/etc/passwd``)
        files = sorted(set(read_index(index).values()))
    else:
        files = ["model.safetensors"]
    sd: dict[str, torch.Tensor] = {}
    for name in files:
        path = root / name
        if not path.is_file():
            raise CheckpointError(f"{path}: not found")
        try:
            sd.update(load_file(str(path)))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{path}: unreadable safetensors file ({exc})") from None
    if cfg.is_moe:
        sd = _unfuse_mixtral(sd)
    if cfg.tie_embeddings:
        sd.pop("lm_head.weight", None)
    check_state_dict(cfg, sd, str(root))
    return cfg, sd
