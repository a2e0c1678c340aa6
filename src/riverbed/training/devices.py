"""Where a branch runs: the device of this process and its share of the global batch."""

from __future__ import annotations

import torch

from riverbed.config import RunConfig
from riverbed.errors import ConfigError
from riverbed.training import distributed as D


def resolve_device(name: str, dist: D.DistInfo | None = None) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("train.device='cuda' but CUDA is not available")
        return torch.device("cuda", (dist or D.from_env()).local_rank)
    return torch.device("cpu")


def micro_batch_size(cfg: RunConfig, world: int) -> int:
    """Sequences per micro-batch per process; the global batch must split evenly."""
    t = cfg.train
    if t.batch_size % (world * t.grad_accum):
        raise ConfigError(f"train.batch_size={t.batch_size} is not divisible by processes x train.grad_accum = "
                          f"{world} x {t.grad_accum}: the global batch must split evenly (change one of them)")
    return t.batch_size // (world * t.grad_accum)
