"""Hugging Face model directories: ``config.json`` + ``model.safetensors`` that ``transformers`` loads.

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

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from riverbed.checkpoints.formats import read_index
from riverbed.errors import CheckpointError
from riverbed.io.atomic import atomic_dir
from riverbed.io.strict_json import read_json
from riverbed.model.config import ModelConfig
from riverbed.model.hf import check_state_dict, config_from_hf, hf_config_dict


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
