"""riverbed.training.evaluate.HeldoutEvaluator: the one evaluation of weights outside the loop."""

from __future__ import annotations

import pytest
import torch

from riverbed.checkpoints import layout
from riverbed.checkpoints.state import read_safetensors
from riverbed.cli.main import main
from riverbed.merging.memory import merge_state_dicts
from riverbed.training.evaluate import HeldoutEvaluator, evaluate_checkpoints
from riverbed.runs.metrics import read_metrics
from runs.conftest import tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from riverbed.runs import Run
    from riverbed.orchestration.drive import train_main

    cfg = tiny_config(ckpt_every=5, eval_every=5)
    run = Run.create(tmp_path_factory.mktemp("ev") / "run", cfg)
    train_main(cfg, run.path, run, until_step=10, progress=False)
    return cfg, run.path


def test_checkpoint_loss_is_the_logged_eval_loss_and_the_window_mean(run):
    cfg, path = run
    ev = HeldoutEvaluator(cfg)
    logged = {r["step"]: r["eval_loss"] for r in read_metrics(layout.metrics_path(path, "main")) if r["kind"] == "eval"}
    for step in (5, 10):
        ckpt = layout.checkpoint_dir(path, "main", step)
        assert ev.loss(ckpt) == logged[step]  # bit for bit: the trainer's batches, chunking and averaging
        w = ev.window_losses(ckpt)
        assert w.dtype == torch.float64 and w.shape == (cfg.train.batch_size * cfg.train.eval_batches,)
        assert float(w.mean()) == pytest.approx(logged[step], rel=1e-6)
    assert ev.tokens == cfg.train.batch_size * cfg.train.eval_batches * cfg.train.seq_len


def test_in_memory_merge_equals_the_merge_written_to_disk(run, tmp_path):
    cfg, path = run
    c5, c10 = (layout.checkpoint_dir(path, "main", s) for s in (5, 10))
    assert main(["merge", str(tmp_path / "m"), str(c5), str(c10), "--no-progress"]) == 0
    merged = merge_state_dicts([read_safetensors(c / layout.MODEL_FILE) for c in (c5, c10)], [0.5, 0.5])
    (on_disk,) = evaluate_checkpoints([tmp_path / "m"], cfg)
    assert HeldoutEvaluator(cfg).loss(merged) == pytest.approx(on_disk.loss, rel=1e-6)


def test_weights_that_do_not_fit_are_named(run):
    cfg, path = run
    bad = dict(read_safetensors(layout.checkpoint_dir(path, "main", 5) / layout.MODEL_FILE))
    bad.pop(next(iter(bad)))
    from riverbed.errors import CheckpointError

    with pytest.raises(CheckpointError):
        HeldoutEvaluator(cfg).loss(bad, "a broken merge")
