"""A golden trajectory: the per-step training loss of the tiny preset, pinned.

The other trainer tests check self-consistency (resume == not stopping, same seed == same
weights), which a silent change of the numerics (init, data order, loss, optimizer, schedule)
passes. This one compares with numbers recorded once, on CPU, float32, one thread
(torch.set_num_threads(1), train.threads = 1), torch 2.13.0. Produced by running this file:

    PYTHONPATH=src python tests/training/test_golden_trajectory.py

which prints GOLDEN. A change that moves these numbers on purpose re-records them (and says why
in its commit); one that moves them by accident fails here. The tolerance is relative 1e-5, to
allow last-bit differences of float32 kernels between CPUs (here one thread and two gave the same
bits). What it catches, measured as the largest relative change over the 12 steps: another seed
5e-2, the LR 0.33 % higher 1.5e-3; what it does not: weight decay 0.1 -> 0.1001 moves it by 3e-7.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import TINY_TOML  # noqa: E402

#: train.max_steps = 12 on TINY_TOML: warmup 2 then constant LR 3e-3, batch 4 x 32 tokens, seed 0.
STEPS = 12
GOLDEN: list[float] = [
    5.581760883331299,
    5.382014751434326,
    5.041703701019287,
    4.832535266876221,
    4.784082889556885,
    4.422751426696777,
    4.330060958862305,
    4.0711565017700195,
    4.123807430267334,
    3.8097474575042725,
    3.7761096954345703,
    3.576683759689331,
]


def trajectory(run_dir: Path) -> list[float]:
    import torch

    from riverbed.config import load_config_text
    from riverbed.training import Callback, train_branch

    torch.set_num_threads(1)
    cfg = load_config_text(TINY_TOML, ["train.max_steps=12", "train.eval_every=0", "train.ckpt_every=0"], source="tiny_toml")
    losses: list[float] = []

    class Record(Callback):
        def on_step_end(self, ctx) -> None:
            losses.append(float(ctx.train_loss))

    train_branch(cfg, run_dir, "main", until_step=STEPS, callbacks=[Record()], progress=False)
    return losses


def test_tiny_preset_loss_per_step_matches_the_golden_vector(tmp_path):
    assert len(GOLDEN) == STEPS
    got = trajectory(tmp_path / "run")
    assert got == pytest.approx(GOLDEN, rel=1e-5), "\n".join(f"step {i + 1}: {g!r} vs golden {w!r}"
                                                             for i, (g, w) in enumerate(zip(got, GOLDEN)))


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        print("GOLDEN: list[float] = [")
        for x in trajectory(Path(d) / "run"):
            print(f"    {x!r},")
        print("]")
