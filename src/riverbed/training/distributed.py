"""Data parallelism: torchrun's environment, the process group, and the few collectives used.

``torchrun --nproc_per_node=K -m riverbed.cli.main train CONFIG.toml`` sets RANK / WORLD_SIZE /
LOCAL_RANK; ``setup()`` then joins the group (gloo on CPU, NCCL on CUDA). Without those
variables everything here is a no-op for a single process.

Invariant that makes a run resumable on a different K: checkpoints hold only rank-independent
state (the model and AdamW state are replicated by DDP, or consolidated from FSDP's shards into
the same files by riverbed.training.distributed_checkpoint; the data position is the global step; the
RNG of rank 0). Any K that divides ``batch_size / grad_accum`` can resume any checkpoint.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def from_env() -> DistInfo:
    """The torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK), or a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def setup(device: torch.device) -> DistInfo:
    """Join the process group if torchrun started us (idempotent)."""
    info = from_env()
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    if info.enabled:
        return DistInfo(dist.get_rank(), dist.get_world_size(), info.local_rank)
    return info


def shutdown() -> None:
    """Leave the process group. The barrier first: without it a fast rank can tear the group
    down while another is still in its last collective, and that rank crashes at exit. Before
    it, a collection: an FSDP2 model and its optimizer (DTensors, hooks in reference cycles)
    must be freed while the group they were sharded over still exists."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def mean_(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """All-reduce to the mean over ranks, in place (async-friendly: no host sync)."""
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t.div_(info.world)
    return t


def sum_(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def any_flag(flag: bool, info: DistInfo) -> bool:
    """True on every rank if it is true on any (so all ranks take the same branch)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())
