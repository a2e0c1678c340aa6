"""How the model is spread over the processes torchrun started: DDP (replicas) or FSDP2 (shards).

``[train] parallel`` picks one; with a single process both are the plain module. The loop sees
three things from here: the module to call (``wrap_model``), whether a micro-batch may skip the
gradient sync (``grad_sync``), and the global gradient norm with clipping (``clip_grad_norm``).

FSDP2 (``torch.distributed.fsdp.fully_shard``) shards every transformer block, then the root
(embeddings, final norm, untied head) -- torchtitan's layout: one all-gather per block in the
forward, one reduce-scatter per block in the backward, and the parameters become DTensors sharded
on dim 0 over all ranks. ``fully_shard`` changes the module in place, so the wrapped module *is*
the model and the optimizer must be built after wrapping (it holds the DTensor parameters).

>>> import torch
>>> from riverbed.config import RunConfig
>>> from riverbed.training.distributed import DistInfo
>>> cfg = RunConfig.from_dict({"model": {"preset": "tiny"}, "train": {"parallel": "fsdp"}})
>>> m = torch.nn.Linear(2, 2)
>>> wrap_model(m, cfg, DistInfo(), torch.device("cpu")) is m  # one process: nothing to shard
True
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import torch
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor

from riverbed.config import RunConfig
from riverbed.errors import ConfigError
from riverbed.training.distributed import DistInfo

PARALLEL = ("ddp", "fsdp")


def mixed_precision(dtype: str) -> MixedPrecisionPolicy | None:
    """FSDP2's policy for ``train.dtype``: bfloat16 = parameters all-gathered and used in bf16
    (half the all-gather bytes), gradients reduce-scattered in fp32 so the sum over ranks loses
    nothing, sharded master weights and AdamW state in fp32 (as under DDP + autocast)."""
    if dtype == "bfloat16":
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return None  # float32: compute, reduce and keep everything in fp32


def blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks FSDP shards one by one (riverbed's ``model.layers``)."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise ConfigError(f"train.parallel='fsdp': {type(model).__name__} has no model.layers to shard")
    return list(layers)


def wrap_model(model: torch.nn.Module, cfg: RunConfig, dist: DistInfo, device: torch.device) -> torch.nn.Module:
    """The module the training step calls for ``cfg.train.parallel``: ``DistributedDataParallel(
    model)`` for ``ddp``, ``model`` itself sharded in place for ``fsdp``, ``model`` for a single
    process. Call it before building the optimizer."""
    parallel = cfg.train.parallel
    if parallel not in PARALLEL:
        raise ConfigError(f"train.parallel={parallel!r}: expected one of {list(PARALLEL)}")
    if not dist.enabled:
        return model
    if parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh(device.type, (dist.world,))
    policy = mixed_precision(cfg.train.dtype)
    kwargs: dict[str, Any] = {"mesh": mesh, **({"mp_policy": policy} if policy is not None else {})}
    for block in blocks(model):
        fully_shard(block, **kwargs)
    fully_shard(model, **kwargs)
    return model


def is_sharded(model: torch.nn.Module) -> bool:
    """True for a module ``wrap_model`` sharded with FSDP2 (its state is DTensors)."""
    return isinstance(model, FSDPModule)


def kind(net: torch.nn.Module, dist: DistInfo) -> str:
    """What actually ran, for state.json: "fsdp", "ddp" or "single" (one process, either key)."""
    if is_sharded(net):
        return "fsdp"
    return "ddp" if dist.enabled else "single"


def grad_sync(net: torch.nn.Module, last: bool) -> contextlib.AbstractContextManager:
    """Context for one micro-batch's backward. DDP skips the all-reduce until the last one
    (``no_sync``); FSDP2 reduce-scatters every micro-batch so gradients stay sharded (skipping
    would keep a full unsharded gradient per rank, the memory FSDP exists to save)."""
    if last or not hasattr(net, "no_sync") or is_sharded(net):
        return contextlib.nullcontext()
    return net.no_sync()


def clip_grad_norm(params: Iterable[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """The global L2 norm of the gradients (and clipping to ``max_norm`` when > 0), as a plain
    tensor. Under FSDP2 each gradient is a DTensor shard and the norm comes back as a DTensor
    whose reduction over the shards DTensor's dispatch does; ``full_tensor()`` (a no-op once
    replicated, an all-reduce while partial) makes it the plain global norm, so every rank clips
    by the same factor as one process would (torchtitan does the same). Norms of the local
    shards instead would clip each rank differently: tested, 2e-3 off one process in 4 steps."""
    params = [p for p in params if p.grad is not None]
    total = torch.nn.utils.get_total_norm([p.grad for p in params])
    if isinstance(total, DTensor):
        total = total.full_tensor()
    if max_norm > 0:
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
    return total


def eval_dist(net: torch.nn.Module, dist: DistInfo) -> DistInfo:
    """The DistInfo evaluation deals batches over. Under FSDP2 every forward is a collective, so
    ranks cannot take different held-out batches (a rank with one batch fewer would hang the
    others): each rank evaluates all of them -- the same numbers, replicated compute."""
    return DistInfo() if is_sharded(net) else dist


__all__ = ["PARALLEL", "blocks", "clip_grad_norm", "eval_dist", "grad_sync", "is_sharded", "kind", "mixed_precision",
           "wrap_model"]
