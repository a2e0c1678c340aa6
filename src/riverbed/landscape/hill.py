"""The hill component, measured: the loss drop of a short, small-LR decay branch from a checkpoint.

In the river-valley picture (Wen et al. 2024) a constant-LR checkpoint sits up the valley walls;
a short decay lets it settle to the floor without moving far along the river. So

    hill(k)  = L(checkpoint k) - L(short decay from k)     (the height above the floor)
    river(k) = L(short decay from k)                       (progress along the river, vs tokens)

Defaults (the length is short next to the run so far, the LR starts where the run was):
``length`` = 10 % of the fork step, at least 10 steps; the decay is ``linear`` from the run's LR
at the fork (``lr`` overrides the start) to 0. The branch is the trainer's own
(riverbed.training.train_branch with a DecayBranch schedule, initialised from the checkpoint:
weights, AdamW moments, data position), trained in a temporary directory that is deleted
afterwards: the probed run is only read. Both losses are measured by the probe objective
(float32, the run's fixed held-out batches).

>>> hill("runs/x/branches/main/checkpoints/step_0000000400").hill     # doctest: +SKIP
0.083
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from riverbed.checkpoints import layout
from riverbed.checkpoints.state import read_state
from riverbed.config import RunConfig
from riverbed.data import load_dataset
from riverbed.errors import CheckpointError, ConfigError, RunError
from riverbed.landscape.inputs import open_checkpoints
from riverbed.schedules import schedule_from_spec
from riverbed.schedules.wsd import DecayBranch
from riverbed.training import train_branch

DEFAULT_FRACTION = 0.1
"""Default decay length: this share of the fork step ..."""
DEFAULT_MIN_LENGTH = 10
"""... but at least this many steps."""
DEFAULT_SHAPE = "linear"


@dataclass(frozen=True)
class HillPoint:
    checkpoint: str
    step: int
    tokens: int
    loss: float
    """Held-out loss of the checkpoint."""
    decayed_loss: float
    """Held-out loss after the short decay: the river component."""
    hill: float
    """loss - decayed_loss."""
    decay_steps: int
    start_lr: float


def default_length(fork_step: int) -> int:
    """Decay steps when ``--length`` is not given.

    >>> default_length(400), default_length(20)
    (40, 10)
    """
    return max(DEFAULT_MIN_LENGTH, round(DEFAULT_FRACTION * fork_step))


def _probe_config(cfg: RunConfig, device: str) -> RunConfig:
    # The branch only has to reach its end: no periodic checkpoints or evaluations, none of the
    # run's monitors (PMA, spike guard) or initialisers, nothing written beside metrics.
    train = dataclasses.replace(cfg.train, eval_every=0, ckpt_every=0, ckpt_every_tokens=0, tensorboard=False,
                                device=device, max_steps=None, max_tokens=None)
    return cfg.replace(train=train, pma=None, guard=None, init=None)


def hill(checkpoint: str | Path, *, length: int | None = None, lr: float | None = None, shape: str = DEFAULT_SHAPE,
         device: str = "auto", progress: bool = True, data: Any | None = None) -> HillPoint:
    """Train a short decay branch from ``checkpoint`` (a riverbed checkpoint) and measure the drop."""

    path = Path(checkpoint)
    if not (path / layout.OPTIMIZER_FILE).is_file() or not (path / layout.STATE_FILE).is_file():
        raise CheckpointError(f"checkpoint {path}: hill trains a decay branch from it and needs a riverbed checkpoint "
                              f"({layout.STATE_FILE} and {layout.OPTIMIZER_FILE}), not a bare model directory")
    setup, (params,) = open_checkpoints([path], device=device, data=data)
    state = read_state(path)
    fork = state.step
    length = default_length(fork) if length is None else length
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ConfigError(f"--length must be a positive number of steps, got {length!r}")
    main = schedule_from_spec(dict(state.schedule or setup.cfg.schedule))
    lr_scale = state.lr_scale
    level = float(main.multiplier(fork)) * lr_scale
    cfg = setup.cfg
    if lr is not None:
        if not lr > 0:
            raise ConfigError(f"--lr must be positive, got {lr!r}")
        if level <= 0:
            raise ConfigError(f"checkpoint {path}: the LR multiplier at step {fork} is 0; --lr cannot scale it")
        cfg = cfg.replace(optim=dataclasses.replace(cfg.optim, lr=lr / level))
    start_lr = cfg.optim.lr * level
    schedule = DecayBranch(main, fork_step=fork, decay_steps=length, shape=shape)
    loss = setup.objective.loss(params)
    with tempfile.TemporaryDirectory(prefix="riverbed-hill-") as tmp:
        res = train_branch(_probe_config(cfg, device), tmp, "hill", schedule, until_step=fork + length, init=path,
                           progress=progress, data=setup.data)
        if res.checkpoint is None:
            raise RunError(f"decay branch from {path} ended without a checkpoint")
        decayed, (dparams,) = open_checkpoints([res.checkpoint], device=device, data=setup.data)
        decayed_loss = decayed.objective.loss(dparams)
    return HillPoint(str(path), fork, state.tokens, loss, decayed_loss, loss - decayed_loss, length, start_lr)


def hill_along(run: str | Path, *, every: int = 1, branch: str = layout.MAIN, **kw: Any) -> list[HillPoint]:
    """:func:`hill` at every ``every``-th saved checkpoint of ``branch`` (step 0 skipped: nothing to decay)."""
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ConfigError(f"--every must be a positive integer, got {every!r}")
    refs = [r for r in layout.list_checkpoints(run, branch) if r.step > 0][::every]
    if not refs:
        raise RunError(f"run {run}: branch {branch!r} has no saved checkpoint past step 0")
    raw = read_state(refs[0].path).config
    if not isinstance(raw, dict):
        raise CheckpointError(f"checkpoint {refs[0].path}: state.json has no run config")
    cfg = RunConfig.from_dict(raw, source=str(refs[0].path / layout.STATE_FILE))
    data = kw.pop("data", None) or load_dataset(cfg.data)  # loaded once for every checkpoint
    return [hill(r.path, data=data, **kw) for r in refs]


def points_json(points: Sequence[HillPoint]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(p) for p in points]
