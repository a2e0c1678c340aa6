"""AdamW with the usual decay split, and the learning rate of a step.

>>> import torch
>>> from riverbed.config import OptimConfig
from riverbed.errors import ConfigError
>>> opt = build_optimizer(torch.nn.Linear(4, 4), OptimConfig(lr=1e-3))
>>> [len(g["params"]) for g in opt.param_groups]   # weight (decayed), bias (not)
[1, 1]
"""

from __future__ import annotations

import torch

from riverbed.config import OptimConfig
from riverbed.errors import ConfigError


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """AdamW (``optim.name``: torch's, or schedule-free AdamW, returned in train mode); matrices
    (>= 2-D) get weight decay, vectors (norm gains, biases) do not.

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
    if cfg.name == "schedulefree-adamw":
        return schedule_free_adamw(groups, cfg)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)


def schedule_free_adamw(groups: list[dict], cfg: OptimConfig) -> torch.optim.Optimizer:
    """Schedule-free AdamW (the ``schedulefree`` package) over ``groups``, in train mode. Its own
    warmup is off: riverbed's schedule sets the LR of every step (``warmup-stable`` warms it up)."""
    try:
        from schedulefree import AdamWScheduleFree  # lazy: an optional extra (riverbed[schedulefree])
    except ImportError:
        raise ConfigError('optim.name = "schedulefree-adamw" needs the schedulefree package: '
                          "pip install 'riverbed[schedulefree]'") from None
    opt = AdamWScheduleFree(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, warmup_steps=0)
    opt.train()
    return opt


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
