"""Held-out loss: the mean token cross-entropy over a fixed set of held-out batches.

The batches are the same sequences at every evaluation and for every branch of a run (the
data package builds them deterministically from the held-out split, which no training step
ever reads), so eval losses of different steps and branches are directly comparable.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch

from riverbed.training.distributed import DistInfo, sum_


def autocast_factory(device: torch.device, dtype: str) -> Callable[[], contextlib.AbstractContextManager]:
    """A zero-argument context-manager factory: bf16 autocast, or nothing for float32."""
    if dtype == "bfloat16":
        return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    chunk: int = 0,
    dist: DistInfo | None = None,
) -> float:
    """Mean of the per-batch mean losses. Batches are dealt round-robin over DDP ranks and
    summed, so the value does not depend on the number of processes (up to float rounding).
    ``chunk`` > 0 splits each batch into row chunks to bound memory (weighted exactly)."""
    dist = dist or DistInfo()
    if not batches:
        raise ValueError("evaluate: no held-out batches")
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    try:
        for i, (x, y) in enumerate(batches):
            if i % dist.world != dist.rank:
                continue
            rows = x.shape[0]
            step = chunk if chunk > 0 else rows
            for start in range(0, rows, step):
                xs = x[start:start + step].to(device, non_blocking=True)
                ys = y[start:start + step].to(device, non_blocking=True)
                with autocast():
                    out = model(xs, ys)
                total += out.loss.double() * (xs.shape[0] / rows)
    finally:
        model.train(was_training)
    sum_(total, dist)
    return float(total.item()) / len(batches)
