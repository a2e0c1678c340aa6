"""AdamW with the usual decay split, and the learning rate of a step.

>>> import torch
>>> from riverbed.config import OptimConfig
>>> opt = build_optimizer(torch.nn.Linear(4, 4), OptimConfig(lr=1e-3))
>>> [len(g["params"]) for g in opt.param_groups]   # weight (decayed), bias (not)
[1, 1]
"""

from __future__ import annotations

import torch

from riverbed.config import OptimConfig


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW; matrices (>= 2-D) get weight decay, vectors (norm gains, biases) do not.

    Parameters are grouped in ``named_parameters()`` order, so the optimizer is the same
    object on every process and after every resume. ``foreach`` is left to torch's default
    (the fastest implementation for the device); it is deterministic on CPU.
    """
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
