"""A tiny real run tree for the predictor: main branch + three finished decay branches (a few seconds)."""

from __future__ import annotations

import pytest

TREE_TOML = """
[model]
preset = "tiny"
[schedule]
type = "warmup-stable"
warmup = 4
[optim]
lr = 0.006
[train]
batch_size = 4
seq_len = 32
max_steps = 60
ckpt_every = 15
eval_every = 3
eval_batches = 2
log_every = 3
tensorboard = false
threads = 1
"""


@pytest.fixture(scope="session")
def predict_tree(tmp_path_factory):
    """Path of a run: main trained 60 steps (checkpoints every 15, eval every 3), 1-sqrt decays
    from 30 (len 15 and 30) and 45 (len 15). Read-only: copy it before changing it."""
    from riverbed.config import load_config_text
    from riverbed.data import load_dataset
    from riverbed.runs import Run
    from riverbed.orchestration.drive import train_main
    from riverbed.runs.fork import plan_requests
    from riverbed.orchestration.fork import run_requests

    cfg = load_config_text(TREE_TOML, [])
    data = load_dataset(cfg.data)
    run = Run.create(tmp_path_factory.mktemp("predict") / "tree", cfg)
    train_main(cfg, run.path, run, until_step=60, progress=False, data=data)
    reqs = plan_requests(run, [30, 45], "1-sqrt", 15) + plan_requests(run, [30], "1-sqrt", 30)
    run_requests(run, reqs, progress=False, cfg=cfg, data=data)
    return run.path
