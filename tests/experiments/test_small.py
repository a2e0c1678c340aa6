"""riverbed.experiments.small: the one small-run builder and evaluator every experiment and claim uses."""

from __future__ import annotations

import re
from pathlib import Path

import riverbed
from riverbed.experiments.small import small_config

SRC = Path(riverbed.__file__).parent


def test_small_config_defaults_and_overrides():
    cfg = small_config(3, 2e-3, {"type": "warmup-stable", "warmup": 5}, batch_size=16, seq_len=64, eval_batches=8)
    assert (cfg.train.seed, cfg.optim.lr, cfg.train.threads, cfg.train.device) == (3, 2e-3, 1, "cpu")
    assert (cfg.train.batch_size, cfg.train.seq_len, cfg.train.eval_batches, cfg.model.max_seq_len) == (16, 64, 8, 64)
    assert cfg.schedule["type"] == "warmup-stable" and not cfg.train.tensorboard


def test_one_builder_and_one_evaluator_for_experiments_and_claims():
    """No experiment or claims study builds a RunConfig/TrainConfig, or evaluates held-out batches, itself."""
    own = {SRC / "experiments" / "small.py"}
    offenders = []
    for pkg in ("experiments", "claims"):
        for f in sorted((SRC / pkg).rglob("*.py")):
            if f in own:
                continue
            text = f.read_text()
            if re.search(r"\b(RunConfig|TrainConfig)\(", text) or re.search(r"\b(heldout_set|evaluate)\(", text):
                offenders.append(str(f.relative_to(SRC)))
    # not small CPU runs: the spike experiment's MoE with its guard; the demo's sized, threaded run
    assert offenders == ["experiments/demo.py", "experiments/spike.py"], offenders
    assert not (SRC / "claims" / "tiny.py").exists()
