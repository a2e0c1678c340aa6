"""The small CPU runs every experiment and claim trains: one RunConfig builder and the few steps
they share (train a root branch, fork a decay, evaluate a checkpoint on held-out data).

Every experiment and claims study builds its runs with :func:`small_config` (the ``tiny`` preset
or a variant, one CPU thread, no TensorBoard), trains them with riverbed's own trainer, and
measures held-out losses with the one evaluator, :class:`riverbed.training.evaluate.HeldoutEvaluator`.

>>> cfg = small_config(0, 1e-2, {"type": "warmup-stable", "warmup": 10})
>>> (cfg.model.d_model, cfg.train.threads, cfg.train.device, cfg.train.tensorboard)
(64, 1, 'cpu', False)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from riverbed.checkpoints import layout
from riverbed.config import OptimConfig, RunConfig, TrainConfig
from riverbed.data import DataConfig
from riverbed.model import ModelConfig


def small_config(seed: int, lr: float, schedule: Mapping[str, Any], *, model: ModelConfig | None = None,
                 data: DataConfig | None = None, optim: OptimConfig | None = None, batch_size: int = 8,
                 seq_len: int = 32, max_steps: int | None = None, ckpt_every: int = 10, eval_every: int = 0,
                 eval_batches: int = 4, eval_batch_size: int = 0, log_every: int = 10, init: Any = None) -> RunConfig:
    """A RunConfig for one small run: CPU, one thread, no TensorBoard; ``model`` defaults to the
    ``tiny`` preset (context at least 64), ``data`` to the embedded corpus, ``optim`` to AdamW at ``lr``."""
    return RunConfig(model=model or ModelConfig.preset("tiny", max_seq_len=max(64, seq_len)), data=data or DataConfig(),
                     optim=optim or OptimConfig(lr=lr), schedule=dict(schedule),
                     train=TrainConfig(batch_size=batch_size, seq_len=seq_len, max_steps=max_steps, ckpt_every=ckpt_every,
                                       eval_every=eval_every, eval_batches=eval_batches, eval_batch_size=eval_batch_size,
                                       log_every=log_every, device="cpu", tensorboard=False, seed=seed, threads=1),
                     init=init)


def train_root(cfg: RunConfig, path: Path, until_step: int | None, data: Any, extra_stops: tuple[int, ...] = (),
               progress: bool = False) -> Any:
    """Create the run at ``path`` and train its root branch to ``until_step`` (None: the config's
    ``max_steps``); returns the opened Run."""
    from riverbed.runs import Run  # lazy: the run tree loads torch, which importing this module must not
    from riverbed.orchestration.drive import train_main  # lazy: as above

    run = Run.create(path, cfg)
    train_main(cfg, run.path, run, until_step=until_step, extra_stops=extra_stops, progress=progress, data=data)
    return Run.open(run.path)


def fork_decay(run: Any, cfg: RunConfig, data: Any, fork: int, shape: str, length: int,
               min_ratio: float | None = None, eval_every: int | None = None, progress: bool = False) -> Path:
    """Train one decay branch of ``run`` from ``fork``; returns its final checkpoint directory."""
    from riverbed.orchestration.fork import run_requests  # lazy: as above
    from riverbed.runs.fork import plan_requests  # lazy: as above

    reqs = plan_requests(run, [fork], shape, length, min_ratio=min_ratio)
    (rec,) = run_requests(run, reqs, cfg=cfg, data=data, progress=progress, eval_every=eval_every)
    return Path(run.path) / rec.final.checkpoint


def evaluator(cfg: RunConfig, data: Any) -> Any:
    """The held-out evaluator of runs built from ``cfg`` (riverbed.training.evaluate.HeldoutEvaluator)."""
    from riverbed.training.evaluate import HeldoutEvaluator  # lazy: torch, as above

    return HeldoutEvaluator(cfg, data)


def checkpoint(run: Any, step: int, branch: str = layout.MAIN) -> Path:
    """The checkpoint directory of ``branch`` at ``step``."""
    return layout.checkpoint_dir(run.path, branch, step)
