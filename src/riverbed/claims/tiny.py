"""The tiny runs the claims train: one config builder and one held-out evaluation for every study.

Every study trains the 103K-parameter ``tiny`` preset (or a variant) on the embedded corpus, on
one CPU thread, without TensorBoard, and measures held-out losses on the run's fixed evaluation
batches (:func:`riverbed.experiments.continued_training.checkpoint_eval_loss`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from riverbed.checkpoints import layout


def config(seed: int, lr: float, schedule: dict[str, Any], *, batch_size: int = 8, seq_len: int = 32,
           ckpt_every: int = 10, eval_every: int = 0, eval_batches: int = 4, max_steps: int | None = None,
           model: Any = None, data: Any = None) -> Any:
    """A RunConfig for one claims run (CPU, one thread, no TensorBoard)."""
    from riverbed.config import OptimConfig, RunConfig, TrainConfig
    from riverbed.data import DataConfig
    from riverbed.model import ModelConfig

    return RunConfig(model=model or ModelConfig.preset("tiny", max_seq_len=64), data=data or DataConfig(),
                     optim=OptimConfig(lr=lr), schedule=schedule,
                     train=TrainConfig(batch_size=batch_size, seq_len=seq_len, max_steps=max_steps, ckpt_every=ckpt_every,
                                       eval_every=eval_every, eval_batches=eval_batches, log_every=10, device="cpu",
                                       tensorboard=False, seed=seed, threads=1))


def train_root(cfg: Any, path: Path, until_step: int, data: Any, extra_stops: tuple[int, ...] = ()) -> Any:
    """Create the run at ``path`` and train its root branch to ``until_step``; returns the opened Run."""
    from riverbed.runs import Run
    from riverbed.orchestration.drive import train_main

    run = Run.create(path, cfg)
    train_main(cfg, run.path, run, until_step=until_step, extra_stops=extra_stops, progress=False, data=data)
    return Run.open(run.path)


def loss_at(cfg: Any, data: Any, run: Any, step: int, branch: str = layout.MAIN) -> float:
    """Held-out loss of ``branch``'s checkpoint at ``step``."""
    from riverbed.experiments.continued_training import checkpoint_eval_loss

    return checkpoint_eval_loss(cfg, data, layout.checkpoint_dir(run.path, branch, step))


def decay_loss(run: Any, cfg: Any, data: Any, fork: int, shape: str, length: int, min_ratio: float | None = None,
               eval_every: int | None = None) -> float:
    """Train one decay branch of ``run`` from ``fork`` and return its final held-out loss."""
    from riverbed.experiments.continued_training import checkpoint_eval_loss
    from riverbed.runs.fork import plan_requests
    from riverbed.orchestration.fork import run_requests

    reqs = plan_requests(run, [fork], shape, length, min_ratio=min_ratio)
    (rec,) = run_requests(run, reqs, cfg=cfg, data=data, progress=False, eval_every=eval_every)
    return checkpoint_eval_loss(cfg, data, run.path / rec.final.checkpoint)
