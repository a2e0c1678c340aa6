"""Tiny real checkpoints on disk for the merge tests (written with the safetensors library)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file


def random_state(seed: int, dtype: torch.dtype = torch.float32, shapes: dict | None = None) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = shapes or {
        "model.embed_tokens.weight": (67, 24),
        "model.layers.0.self_attn.q_proj.weight": (24, 24),
        "model.layers.0.mlp.up_proj.weight": (40, 24),
        "model.norm.weight": (24,),
        "lm_head.weight": (67, 24),
    }
    return {k: (torch.randn(*s, generator=g) * (1 + seed)).to(dtype) for k, s in shapes.items()}


def write_dir(path: Path, sd: dict[str, torch.Tensor], *, shards: int = 1, config: dict | None = None, state: dict | None = None) -> Path:
    """An HF-style model dir: model.safetensors, or `shards` files + model.safetensors.index.json."""
    path.mkdir(parents=True, exist_ok=True)
    if shards == 1:
        save_file(sd, str(path / "model.safetensors"), metadata={"format": "pt"})
    else:
        names = list(sd)
        weight_map = {}
        for i in range(shards):
            part = names[i::shards]
            fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            save_file({k: sd[k] for k in part}, str(path / fname), metadata={"format": "pt"})
            weight_map.update({k: fname for k in part})
        (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    if config is not None:
        (path / "config.json").write_text(json.dumps(config))
    if state is not None:
        (path / "state.json").write_text(json.dumps(state))
    return path


def load_dir(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if (path / "model.safetensors.index.json").exists():
        index = json.loads((path / "model.safetensors.index.json").read_text())
        out = {}
        for f in sorted(set(index["weight_map"].values())):
            out.update(load_file(str(path / f)))
        return out
    return load_file(str(path / "model.safetensors"))


def reference(sds: list[dict[str, torch.Tensor]], weights) -> dict[str, torch.Tensor]:
    return {k: sum(float(w) * sd[k].double() for w, sd in zip(weights, sds)) for k in sds[0]}
