"""Schedule-free AdamW (Defazio et al. 2024, "The Road Less Scheduled") in riverbed's checkpoints.

The ``schedulefree`` optimizer keeps, per parameter, ``z`` (the base sequence) and ``exp_avg_sq``;
in train mode the model's parameters hold ``y``, the point it takes gradients at, and the weights to
evaluate, merge or ship are the average ``x = (y - (1 - beta1) z) / beta1``, which its ``eval()``
computes in place and ``train()`` undoes only up to float rounding. So riverbed:

* evaluates and checkpoints inside :func:`eval_weights`: the parameters hold ``x`` for the block
  and ``y`` is copied back bit for bit afterwards (training never sees a round trip);
* writes ``x`` to model.safetensors (what ``riverbed eval``, merges and exports read) and the state
  by parameter name to optimizer.safetensors: ``<param>.z``, ``<param>.exp_avg_sq`` and
  ``<param>.y`` (the train-mode parameter), with the step count, weight sum and peak LR of every
  param group in the metadata (format ``riverbed.schedulefree-adamw.v1``);
* on load, puts ``y`` back into the parameters and restores the groups, so resuming is exact.

Torch only: the optimizer is recognised by its param groups (``train_mode`` and ``weight_sum``),
without importing the package.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping

import torch

from riverbed.errors import CheckpointError

FORMAT = "riverbed.schedulefree-adamw.v1"
STATE_KEYS = ("z", "exp_avg_sq")
TRAIN_KEY = "y"
GROUP_KEYS = ("k", "weight_sum", "lr_max", "scheduled_lr")


def is_schedule_free(optimizer: torch.optim.Optimizer | None) -> bool:
    return optimizer is not None and bool(optimizer.param_groups) and all(
        "train_mode" in g and "weight_sum" in g for g in optimizer.param_groups)


@contextlib.contextmanager
def eval_weights(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> Iterator[dict[str, torch.Tensor]]:
    """The block sees the eval-mode weights ``x`` in ``model``; yields the train-mode parameters
    ``y`` by name (clones), which are copied back exactly on exit. A no-op (yielding {}) for any
    other optimizer, or one already in eval mode."""
    if not is_schedule_free(optimizer) or not optimizer.param_groups[0]["train_mode"]:
        yield {}
        return
    names = {id(p): n for n, p in model.named_parameters()}
    saved = {names[id(p)]: p.detach().clone() for g in optimizer.param_groups for p in g["params"]}
    optimizer.eval()  # type: ignore[attr-defined]  (the schedulefree optimizers' mode switch)
    try:
        yield saved
    finally:
        with torch.no_grad():
            for g in optimizer.param_groups:
                for p in g["params"]:
                    p.copy_(saved[names[id(p)]])
                g["train_mode"] = True


def state_tensors(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                  train_params: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """optimizer.safetensors of a schedule-free optimizer: its state by parameter name plus
    ``<param>.y`` from ``train_params`` (what :func:`eval_weights` yields), and the metadata."""
    names = {id(p): n for n, p in model.named_parameters()}
    tensors: dict[str, torch.Tensor] = {}
    groups = []
    for g in optimizer.param_groups:
        for p in g["params"]:
            name = names[id(p)]
            for key in STATE_KEYS:
                if key in optimizer.state.get(p, {}):
                    tensors[f"{name}.{key}"] = optimizer.state[p][key].detach().to("cpu").contiguous()
            if f"{name}.z" in tensors:  # before the first step there is no state and y = x
                tensors[f"{name}.{TRAIN_KEY}"] = train_params[name].detach().to("cpu").contiguous()
        groups.append({"params": [names[id(p)] for p in g["params"]], **{k: float(g[k]) for k in GROUP_KEYS},
                       "betas": list(g["betas"]), "weight_decay": g["weight_decay"]})
    return tensors, {"format": FORMAT, "param_groups": json.dumps(groups)}


def load_state_tensors(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str], model: torch.nn.Module,
                       optimizer: torch.optim.Optimizer, *, source: str) -> None:
    """Restore what :func:`state_tensors` wrote (after the model's weights, ``x``, are loaded):
    state, train-mode parameters and the groups' counters; strictly, naming ``source``."""
    if not is_schedule_free(optimizer):
        raise CheckpointError(f"{source}: schedule-free AdamW state, but the config's optimizer is not "
                              "schedule-free (optim.name)")
    try:
        groups = json.loads(meta.get("param_groups", "[]"))
    except ValueError:
        raise CheckpointError(f"{source}: unreadable param_groups metadata") from None
    if len(groups) != len(optimizer.param_groups):
        raise CheckpointError(f"{source}: {len(groups)} param groups, the optimizer has {len(optimizer.param_groups)}")
    names = {id(p): n for n, p in model.named_parameters()}
    known: set[str] = set()
    with torch.no_grad():
        for g, saved in zip(optimizer.param_groups, groups):
            for p in g["params"]:
                name = names[id(p)]
                keys = (*STATE_KEYS, TRAIN_KEY)
                known.update(f"{name}.{k}" for k in keys)
                have = {k: tensors[f"{name}.{k}"] for k in keys if f"{name}.{k}" in tensors}
                if not have:
                    optimizer.state.pop(p, None)
                    continue
                if set(have) != set(keys):
                    raise CheckpointError(f"{source}: incomplete schedule-free state for {name}: has {sorted(have)}")
                for k, t in have.items():
                    if tuple(t.shape) != tuple(p.shape):
                        raise CheckpointError(f"{source}: {name}.{k} has shape {tuple(t.shape)}, parameter is "
                                              f"{tuple(p.shape)}")
                optimizer.state[p] = {k: have[k].to(device=p.device, dtype=p.dtype).clone() for k in STATE_KEYS}
                p.copy_(have[TRAIN_KEY].to(device=p.device, dtype=p.dtype))
            for k in GROUP_KEYS:
                g[k] = int(saved[k]) if k == "k" else float(saved[k])
            g["train_mode"] = True
    unexpected = sorted(set(tensors) - known)
    if unexpected:
        raise CheckpointError(f"{source}: tensors for unknown parameters: {unexpected[:5]}")
