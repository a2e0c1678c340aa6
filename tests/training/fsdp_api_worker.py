"""Run by test_fsdp.py under torchrun (2 gloo ranks): the Python API of FSDP2 training and of
sharded checkpoints, one step. Usage: python fsdp_api_worker.py OUT_DIR"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch.distributed.tensor import DTensor

from riverbed.training import distributed_checkpoint as DC
from riverbed.checkpoints.schema import CheckpointState
from riverbed.config import RunConfig
from riverbed.model import build_model
from riverbed.training import distributed as D
from riverbed.training import parallel as P
from riverbed.training.optim import build_optimizer

CFG = RunConfig.from_dict({"model": {"preset": "tiny", "max_seq_len": 32},
                           "train": {"parallel": "fsdp", "device": "cpu", "batch_size": 4, "seq_len": 16}})


def batch(rank: int) -> torch.Tensor:
    return torch.randint(0, CFG.model.vocab_size, (2, 16), generator=torch.Generator().manual_seed(rank))


def sharded(seed: int, dist: D.DistInfo) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = build_model(CFG.model, seed=seed)
    net = P.wrap_model(model, CFG, dist, torch.device("cpu"))
    assert net is model and P.is_sharded(model)
    return model, build_optimizer(model, CFG.optim)


def local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if isinstance(t, DTensor) else t


def main(out: Path) -> None:
    dist = D.setup(torch.device("cpu"))
    model, opt = sharded(0, dist)
    x = batch(dist.rank)
    model(x, x).loss.backward()
    norm = P.clip_grad_norm(list(model.parameters()), 0.01)
    opt.step()
    # A component file (as a callback's checkpoint_files gives rank 0) goes in before the rename.
    files = {"component.json": {"rank": dist.rank}} if dist.is_main else {}
    DC.save(out / "ckpt", model, opt, CheckpointState(step=1, parallel=P.kind(model, dist)), dist, files=files)
    # A stray .metadata that unpickling would choke on: the HF reader must never open it.
    if dist.is_main:
        (out / "ckpt" / ".metadata").write_bytes(b"\x80\x04 not a pickle")
    D.barrier(dist)
    # A fresh sharded model from another seed takes exactly the saved shards back.
    other, other_opt = sharded(1, dist)
    DC.load(out / "ckpt", other, other_opt)
    for (name, p), q in zip(model.named_parameters(), other.parameters()):
        assert torch.equal(local(p), local(q)), name
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(local(opt.state[p][key]), local(other_opt.state[q][key])), (name, key)
    if dist.is_main:
        (out / "norm.json").write_text(json.dumps({"norm": float(norm), "world": dist.world}))
    del model, opt, other, other_opt
    D.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
