"""Tiny real runs (~100K-parameter model, byte tokens of the embedded corpus, a few steps)."""

from __future__ import annotations

import pytest

TINY_TOML = """
[model]
preset = "tiny"

[schedule]
type = "warmup-stable"
warmup = 4

[optim]
lr = 0.005

[train]
batch_size = 4
seq_len = 32
ckpt_every = 10
eval_every = 10
eval_batches = 2
log_every = 1
tensorboard = false
threads = 1
"""


def tiny_config(schedule: str | None = None, **train: int):
    from riverbed.config import load_config_text

    text = TINY_TOML
    if schedule is not None:
        head, _, rest = text.partition("[schedule]")
        text = head + "[schedule]\n" + schedule + "\n[optim]" + rest.split("[optim]", 1)[1]
    overrides = [f"train.{k}={v}" for k, v in train.items()]
    return load_config_text(text, overrides)


@pytest.fixture(scope="session")
def tiny_data():
    from riverbed.data import DataConfig, load_dataset

    return load_dataset(DataConfig())


@pytest.fixture(scope="session")
def _tiny_main_master(tmp_path_factory, tiny_data):
    from riverbed.runs import Run
    from riverbed.orchestration.drive import train_main

    cfg = tiny_config()
    run = Run.create(tmp_path_factory.mktemp("master") / "run", cfg)
    train_main(cfg, run.path, run, until_step=30, progress=False, data=tiny_data)
    return run.path


@pytest.fixture
def tiny_main(tmp_path, _tiny_main_master):
    """A run whose main branch trained 30 steps (checkpoints at 10, 20, 30), copied per test."""
    import shutil

    from riverbed.runs import Run

    shutil.copytree(_tiny_main_master, tmp_path / "run")
    return Run.open(tmp_path / "run")
