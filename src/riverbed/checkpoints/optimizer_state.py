"""Optimizer state by parameter name: the one owner of the flat ``"<param>.<key>"`` layout.

``{"model.layers.0.mlp.up_proj.weight.exp_avg": t, ...}``: names, not indices, so that the
optimizer states of several checkpoints (or snapshots) line up like their weights and can be
merged. :func:`optimizer_state_by_name` is the one place that reads an optimizer's state into
this layout: riverbed's checkpoints (optimizer.safetensors, AdamW only, with the param groups'
hyper-parameters in the metadata) and the framework integrations' snapshots both use it.

>>> import torch
>>> m = torch.nn.Linear(2, 1); opt = torch.optim.AdamW(m.parameters())
>>> m(torch.ones(1, 2)).sum().backward(); opt.step()
>>> sorted(optimizer_state_by_name(m, opt))[:2]
['bias.exp_avg', 'bias.exp_avg_sq']
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch

from riverbed.errors import CheckpointError

OPTIMIZER_FORMAT = "riverbed.adamw.v1"
MOMENTS = ("exp_avg", "exp_avg_sq", "step")


def _param_names(model: torch.nn.Module) -> dict[int, str]:
    return {id(p): name for name, p in model.named_parameters()}


def optimizer_state_by_name(model: torch.nn.Module, optimizer: torch.optim.Optimizer, *,
                            copy: bool = True) -> dict[str, torch.Tensor]:
    """The state of any torch optimizer as CPU tensors ``{"<param>.<key>": tensor}``, in
    parameter-group order (scalars become 0-dim tensors). ``copy=False`` shares CPU storage
    (for writing a file at once); snapshots kept while training goes on need ``copy=True``."""
    names = _param_names(model)
    out: dict[str, torch.Tensor] = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            if id(p) not in names:
                raise CheckpointError("optimizer holds a parameter that is not in the model")
            for key, value in optimizer.state.get(p, {}).items():
                t = value if torch.is_tensor(value) else torch.tensor(float(value))
                out[f"{names[id(p)]}.{key}"] = t.detach().to("cpu", copy=copy).contiguous()
    return out


def optimizer_tensors(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """AdamW state by name (:func:`optimizer_state_by_name`) plus the safetensors metadata of
    optimizer.safetensors (format and param-group hyper-parameters as JSON)."""
    tensors = optimizer_state_by_name(model, optimizer, copy=False)
    for full in tensors:
        name, key = full.rsplit(".", 1)
        if key not in MOMENTS:
            raise CheckpointError(f"optimizer state {key!r} of {name} is not AdamW's (expected {MOMENTS})")
    return tensors, optimizer_metadata(model, optimizer)


def optimizer_metadata(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, str]:
    """The safetensors metadata of optimizer.safetensors: the format and the param groups (parameter
    names + JSON-able hyper-parameters) as JSON. Also written by the sharded (FSDP2) checkpoint."""
    names = _param_names(model)
    groups = []
    for group in optimizer.param_groups:
        hyper = {k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items() if k != "params"}
        groups.append({"params": [names[id(p)] for p in group["params"]], **{k: v for k, v in hyper.items() if _jsonable(v)}})
    return {"format": OPTIMIZER_FORMAT, "param_groups": json.dumps(groups)}


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


def load_optimizer_tensors(
    tensors: Mapping[str, torch.Tensor], model: torch.nn.Module, optimizer: torch.optim.Optimizer, *, source: str = "optimizer state"
) -> None:
    """Set AdamW state from named tensors (the optimizer.safetensors layout), strictly: an
    incomplete, mis-shaped or unknown entry raises CheckpointError naming ``source``. The param
    groups' hyper-parameters stay those of ``optimizer`` (they come from the config; the LR is
    set from the schedule at every step)."""
    names = _param_names(model)
    known = set()
    state: dict[int, dict[str, torch.Tensor]] = {}
    index = 0
    for group in optimizer.param_groups:
        for p in group["params"]:
            name = names[id(p)]
            entry = {}
            for key in MOMENTS:
                full = f"{name}.{key}"
                known.add(full)
                if full in tensors:
                    entry[key] = tensors[full]
            if entry:
                if set(entry) != set(MOMENTS):
                    raise CheckpointError(f"{source}: incomplete AdamW state for {name}: has {sorted(entry)}")
                for key in ("exp_avg", "exp_avg_sq"):
                    if tuple(entry[key].shape) != tuple(p.shape):
                        raise CheckpointError(f"{source}: {name}.{key} has shape {tuple(entry[key].shape)}, parameter is {tuple(p.shape)}")
                state[index] = dict(entry)
            index += 1
    unexpected = sorted(set(tensors) - known)
    if unexpected:
        raise CheckpointError(f"{source}: tensors for unknown parameters: {unexpected[:5]}")
    sd = optimizer.state_dict()
    sd["state"] = state
    optimizer.load_state_dict(sd)


def load_optimizer_state_by_name(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                                 state: Mapping[str, torch.Tensor] | None) -> None:
    """Replace any torch optimizer's state with a by-name state (None clears it: fresh
    moments), keeping each entry on the device the optimizer keeps it on (AdamW's ``step``
    lives on the CPU). For other people's optimizers, whose keys riverbed does not check."""
    current = {p: dict(s) for p, s in optimizer.state.items()}
    optimizer.state.clear()
    if state is None:
        return
    for name, p in model.named_parameters():
        prefix = f"{name}."
        entries = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and "." not in k[len(prefix):]}
        if not entries:
            continue
        new = {}
        for key, v in entries.items():
            old = current.get(p, {}).get(key)
            device = old.device if isinstance(old, torch.Tensor) else (p.device if v.dim() else torch.device("cpu"))
            new[key] = v.to(device=device, dtype=v.dtype, copy=True)
        optimizer.state[p] = new
