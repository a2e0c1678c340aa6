"""A tiny bigram run shared by the landscape tests (trained once per module, ~2 s)."""

from __future__ import annotations

import pytest

BIGRAM_RUN = """
[model]
preset = "tiny"
vocab_size = 16
max_seq_len = 32
d_model = 16
n_layers = 1
n_heads = 2
n_kv_heads = 1
d_ff = 32

[data]
source = "bigram"
vocab_size = 16
bigram_tokens = 8000
bigram_successors = 6

[optim]
lr = 0.01

[schedule]
type = "warmup-stable"
warmup = 2

[train]
batch_size = 4
seq_len = 16
max_steps = 12
ckpt_every = 4
eval_every = 4
eval_batches = 2
log_every = 4
device = "cpu"
threads = 1
tensorboard = false
"""


@pytest.fixture(scope="module")
def bigram_run(tmp_path_factory):
    """(run dir, config path, [checkpoint dirs at steps 4, 8, 12])."""
    from riverbed.checkpoints import layout
    from riverbed.cli.main import main

    root = tmp_path_factory.mktemp("bigram")
    cfg, run = root / "bigram.toml", root / "run"
    cfg.write_text(BIGRAM_RUN)
    assert main(["train", str(cfg), "--run", str(run), "--no-progress"]) == 0
    return run, cfg, [r.path for r in layout.list_checkpoints(run, "main")]
