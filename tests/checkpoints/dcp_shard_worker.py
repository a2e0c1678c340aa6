"""Two gloo processes save one DCP checkpoint of DTensors: row shards (FSDP's Shard(0)), column
shards (tensor parallel's Shard(1)), an uneven split and a replicated tensor; rank 0 also writes
the full tensors to ``full.safetensors`` beside it. Usage: python dcp_shard_worker.py OUT_DIR"""

import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.multiprocessing as mp
from safetensors.torch import save_file
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import Replicate, Shard, distribute_tensor


def work(rank: int, out: str, init: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    mesh = init_device_mesh("cpu", (2,))
    g = torch.Generator().manual_seed(0)
    full = {"rows": torch.randn(6, 4, generator=g), "cols": torch.randn(4, 6, generator=g),
            "odd": torch.randn(5, generator=g), "rep": torch.randn(3, generator=g)}
    place = {"rows": Shard(0), "cols": Shard(1), "odd": Shard(0), "rep": Replicate()}
    dcp.save({k: distribute_tensor(v, mesh, [place[k]]) for k, v in full.items()}, checkpoint_id=out)
    if rank == 0:
        save_file(full, os.path.join(os.path.dirname(out), "full.safetensors"))
    dist.destroy_process_group()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        mp.start_processes(work, args=(sys.argv[1], "file://" + os.path.join(tmp, "rdzv")), nprocs=2, start_method="spawn")
