"""Held-out loss: the mean token cross-entropy over a fixed set of held-out batches.

The batches are the same sequences at every evaluation and for every branch of a run (the
data package builds them deterministically from the held-out split, which no training step
ever reads), so eval losses of different steps and branches are directly comparable.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

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


@torch.no_grad()
def evaluate_by_bucket(
    model: torch.nn.Module,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    of_token: torch.Tensor,
    names: Sequence[str],
    *,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    chunk: int = 0,
    dist: DistInfo | None = None,
) -> dict[str, float]:
    """Mean token loss of the held-out positions in each bucket: a position's bucket is that of
    its context token (``of_token[x]``, -1 = none; riverbed.data.buckets). Buckets without a
    position are left out. Rank-independent like :func:`evaluate` (sums, then one division)."""
    dist = dist or DistInfo()
    if not batches:
        raise ValueError("evaluate_by_bucket: no held-out batches")
    k = len(names)
    of_token = of_token.to(device)
    sums = torch.zeros(k + 1, dtype=torch.float64, device=device)  # slot k: positions in no bucket
    counts = torch.zeros(k + 1, dtype=torch.float64, device=device)
    was_training = model.training
    model.eval()
    try:
        for i, (x, y) in enumerate(batches):
            if i % dist.world != dist.rank:
                continue
            step = chunk if chunk > 0 else x.shape[0]
            for start in range(0, x.shape[0], step):
                xs = x[start:start + step].to(device, non_blocking=True)
                ys = y[start:start + step].to(device, non_blocking=True)
                with autocast():
                    logits = model(xs).logits
                loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), ys.flatten(), reduction="none")
                b = of_token[xs.flatten()]
                b = torch.where(b < 0, torch.full_like(b, k), b)
                sums.index_add_(0, b, loss.double())
                counts.index_add_(0, b, torch.ones_like(loss, dtype=torch.float64))
    finally:
        model.train(was_training)
    sum_(sums, dist)
    sum_(counts, dist)
    return {names[j]: float(sums[j] / counts[j]) for j in range(k) if counts[j] > 0}


def eval_extras(model: torch.nn.Module, data: Any, batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
                **kw: Any) -> dict[str, Any]:
    """Extra fields of an eval row for data with context buckets (bigram, data.bucket_map):
    ``eval_loss_by_bucket``; for bigram data also ``eval_optimal_loss``, the true language's
    loss on exactly these held-out tokens (riverbed.data.bigram), so excess = eval_loss - it."""
    buckets = getattr(data, "buckets", None)
    if buckets is None:
        return {}
    of_token = torch.as_tensor(buckets.of_token, dtype=torch.long)
    out: dict[str, Any] = {"eval_loss_by_bucket": evaluate_by_bucket(model, batches, of_token, buckets.names, **kw)}
    language = getattr(data, "language", None)
    if language is not None:
        out["eval_optimal_loss"] = optimal_loss(language, batches)
    return out


def optimal_loss(language: Any, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Mean of the per-batch true-model losses, averaged exactly like :func:`evaluate`."""
    per_batch = [language.sample_loss(x.flatten().numpy(), y.flatten().numpy()) for x, y in batches]
    return sum(per_batch) / len(per_batch)
