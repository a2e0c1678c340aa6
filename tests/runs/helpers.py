"""Hand-made run trees (no training): manifests and checkpoint stubs with known numbers."""

from __future__ import annotations

import json
from pathlib import Path

from riverbed.checkpoints import layout
from riverbed.runs import BranchRecord, Point, Run

TOKENS_PER_STEP = 100
FLOPS_PER_TOKEN = 6.0


def fake_checkpoint(run: Path, branch: str, step: int, loss: float | None = None) -> Path:
    """A checkpoint dir that layout.list_checkpoints accepts (state.json + model file)."""
    d = layout.checkpoint_dir(run, branch, step)
    d.mkdir(parents=True)
    (d / layout.MODEL_FILE).write_bytes(b"weights-%d" % step)
    tokens = step * TOKENS_PER_STEP
    state = {"step": step, "tokens": tokens, "flops": tokens * FLOPS_PER_TOKEN, "branch": branch,
             "metrics": {} if loss is None else {"eval_loss": loss}}
    (d / layout.STATE_FILE).write_text(json.dumps(state))
    return d


def point(step: int, loss: float | None = None) -> Point:
    t = step * TOKENS_PER_STEP
    return Point(step, t, t * FLOPS_PER_TOKEN, loss)


def make_tree(path: Path) -> Run:
    """main saved at 100..500; decay branches forked at 100 (finished) and 300 (finished)."""
    run = Run.create(path, {"model": {"d_model": 8}, "train": {"batch_size": 1}})
    run.add_branch(BranchRecord("main", "main", {"kind": "warmup_stable", "warmup": 10}, status="stopped"))
    for s in (100, 200, 300, 400, 500):
        fake_checkpoint(path, "main", s, loss=5.0 - s / 200)
    for fork, length in ((100, 20), (300, 60)):
        name = f"linear-from{fork}-len{length}"
        run.add_branch(BranchRecord(name, "decay", {"kind": "decay_branch"}, parent="main",
                                    fork=point(fork, 5.0 - fork / 200), status="running"))
        run.finish_branch(name, point(fork + length, 4.0 - fork / 200))
    return Run.open(path)
