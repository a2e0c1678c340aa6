"""Shared fixtures. Tests never write outside ``tmp_path``."""

from __future__ import annotations

import os

import pytest

# Keep CPU tests predictable on a 2-core machine.
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def tiny_model_config():
    """A ~100K-parameter dense Llama-style ModelConfig (byte vocab, 2 layers, d_model 64, GQA 4/2)."""
    from riverbed.model import ModelConfig

    return ModelConfig.preset("tiny", max_seq_len=64)


@pytest.fixture
def tiny_moe_config():
    """A ~140K-parameter Mixtral-style ModelConfig: 4 experts, top-2 routing, 2 layers."""
    from riverbed.model import ModelConfig

    return ModelConfig.preset("tiny-moe", max_seq_len=64)


TINY_TOML = """
[model]
preset = "tiny"
max_seq_len = 64

[optim]
lr = 0.003

[schedule]
type = "warmup-stable"
warmup = 2

[train]
batch_size = 4
seq_len = 32
max_steps = 4
ckpt_every = 2
eval_every = 2
eval_batches = 2
log_every = 1
device = "cpu"
threads = 1
tensorboard = false
"""


#: ``--set`` overrides of TINY_TOML for a 12-step main branch saving every 2 steps, without
#: evaluation: the run that merge emulation and checkpoint retention are tested on.
TWELVE_STEPS = ("optim.lr=0.005", "train.max_steps=12", "train.eval_every=0", "train.eval_batches=1",
                "train.log_every=4", "train.tensorboard=false")


@pytest.fixture(scope="session")
def tiny_toml() -> str:
    """The one tiny run config as TOML text: the ~100K-parameter model on the default corpus,
    global batch 4 x 32 tokens, warmup 2 then constant LR, 4 steps, a checkpoint and a 2-batch
    evaluation every 2 steps, CPU, float32, one thread (a ~100K model runs several times faster
    on one thread than on two busy ones). Write it to a file for the CLI; derive a variant with
    ``tiny_toml.replace(...)`` or ``--set``."""
    return TINY_TOML


@pytest.fixture
def tiny_run_config(tiny_toml):
    """``tiny_toml`` as a RunConfig (trains in well under a second). Derive variants with
    ``dataclasses.replace``."""
    from riverbed.config import load_config_text

    return load_config_text(tiny_toml, source="tiny_toml")


@pytest.fixture(autouse=True)
def _torch_threads():
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    # Tiny test models run fastest on one thread (and do not fight other processes for cores).
    torch.set_num_threads(1)
    yield


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has ended (started and reaped here), for stale-temporary tests."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="module")
def trained(tiny_toml, tmp_path_factory):
    """A tiny run trained to step 4 (checkpoints 2 and 4) through the CLI at ``trained / "r"`` (config
    ``trained / "t.toml"``); copy it (``run_copy``) before changing it."""
    from riverbed.cli.main import main

    root = tmp_path_factory.mktemp("trained")
    (root / "t.toml").write_text(tiny_toml)
    assert main(["train", str(root / "t.toml"), "--run", str(root / "r"), "--no-progress"]) == 0
    return root


@pytest.fixture
def run_copy(trained, tmp_path):
    """A private copy of :func:`trained` (its root: ``run_copy / "r"``, ``run_copy / "t.toml"``)."""
    import shutil

    shutil.copytree(trained, tmp_path / "w")
    return tmp_path / "w"
