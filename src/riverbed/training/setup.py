"""Start-up of a branch: everything the step loop needs, built before the first step.

:func:`start_branch` resolves the device and the processes, loads the data, builds the model
and the optimizer, wraps the model for data parallelism between the two (DDP or FSDP2:
:func:`riverbed.training.parallel.wrap_model`, the one place that knows about them; FSDP shards
in place, so the optimizer must be built on the sharded parameters), adds the callbacks the config asks for (:func:`callbacks_from_config`) and
restores the starting point (:func:`start_state`: resume, fork or scratch). The loop
(:mod:`riverbed.training.loop`) then only steps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from riverbed.training import distributed_checkpoint as DC
from riverbed.checkpoints import layout
from riverbed.checkpoints.schedule_free import eval_weights, is_schedule_free
from riverbed.checkpoints.schema import CheckpointState, read_state
from riverbed.config import RunConfig
from riverbed.data import load_dataset
from riverbed.errors import CheckpointError, ConfigError, RunError
from riverbed.training.pma_monitor import PMAMonitor
from riverbed.training.retention_callback import RetentionCallback
from riverbed.model import build_model
from riverbed.schedules import schedule_to_spec
from riverbed.training import distributed as D
from riverbed.training import parallel as P
from riverbed.training.callbacks import Callback, TrainContext
from riverbed.training.devices import micro_batch_size, resolve_device
from riverbed.training.evaluate import autocast_factory, evaluate, heldout_set
from riverbed.training.spike_guard import SpikeGuard
from riverbed.training.merged_init import ensure_merged_init
from riverbed.runs.metrics import MetricsLogger
from riverbed.training.optim import build_optimizer


def check_vocab(cfg: RunConfig, data: Any) -> None:
    """The model's vocabulary must hold every token id of the data."""
    if data.vocab_size > cfg.model.vocab_size:
        raise ConfigError(f"model.vocab_size={cfg.model.vocab_size} is smaller than the data's vocabulary "
                          f"({data.vocab_size} tokens, data.tokenizer={getattr(cfg.data, 'tokenizer', '?')!r})")


def callbacks_from_config(cfg: RunConfig, run_dir: str | Path, branch: str, *, init: str | Path | None,
                          given: Sequence[Callback] = ()) -> tuple[str | Path | None, tuple[Callback, ...]]:
    """What the config's optional sections add to a branch: the starting checkpoint and the callbacks.

    * ``[init] from_merge``: a new run (main, no checkpoint, no explicit ``init``) starts from a
      merge of another run's checkpoints (PMA-init, riverbed.training.merged_init);
    * ``[guard]``: a :class:`SpikeGuard` judges every step (unless ``given`` holds one);
    * ``[pma]``: a :class:`PMAMonitor` evaluates the merge of the last N checkpoints at each
      evaluation (unless ``given`` holds one);
    * ``[forecast]`` is added by riverbed.orchestration.drive.train_main (its monitor uses the predictor, a layer
      above training);
    * ``[train] keep``: a :class:`RetentionCallback` prunes the main branch's checkpoints that the
      retention plan does not need (riverbed.runs.retention).

    Returns ``(init, callbacks)``: ``given`` first, in order, then the added ones.
    """
    for cb in given:
        if not isinstance(cb, Callback):
            raise ConfigError(f"callback {type(cb).__name__}: not a riverbed.training.Callback (subclass it; "
                              "its hooks on_step_end / on_eval / on_checkpoint default to doing nothing)")
    if init is None and branch == layout.MAIN and cfg.init is not None and not layout.list_checkpoints(run_dir, branch):
        init = ensure_merged_init(cfg.init, run_dir, seed=cfg.train.seed)
    added: list[Callback] = []
    if cfg.guard is not None and not any(isinstance(cb, SpikeGuard) for cb in given):
        added.append(SpikeGuard(cfg.guard))
    if cfg.pma is not None and not any(isinstance(cb, PMAMonitor) for cb in given):
        added.append(PMAMonitor(cfg.pma))
    if cfg.train.keep and branch == layout.MAIN and not any(isinstance(cb, RetentionCallback) for cb in given):
        added.append(RetentionCallback.from_config(cfg))
    return init, (*given, *added)


@dataclass(frozen=True)
class StartState:
    """Where a branch starts: ``event`` is "resume", "init" (a fork / merged init) or "start"."""

    step: int
    tokens: int
    flops: float
    event: str
    lr_scale: float = 1.0
    data_offset: int = 0
    eval_loss: float | None = None
    checkpoint: Path | None = None
    """The checkpoint it resumes or forks from (None from scratch)."""


def start_state(cfg: RunConfig, run_dir: Path, branch: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                init: str | Path | None, until_step: int | None) -> StartState | tuple[CheckpointState, Path]:
    """Resume (newest checkpoint of the branch), fork (``init``) or start from scratch.

    A branch already at or past ``until_step`` returns its newest ``(state, path)`` untouched.
    Checkpoints load whatever parallelism and world size wrote them (resharded under FSDP);
    NaN/inf weights are refused."""
    DC.refuse_unreshardable_branch(run_dir, branch)  # per-rank shards only: an error, not skipped
    refs = layout.list_checkpoints(run_dir, branch)
    if refs:
        ref = refs[-1]
        if until_step is not None and ref.step >= until_step:
            return read_state(ref.path), ref.path
        state = DC.load(ref.path, model, optimizer, rng=True)
        return _from_state(state, "resume", ref.path)
    if init is not None:
        init = Path(init)
        if not (init / layout.STATE_FILE).is_file():
            raise CheckpointError(f"init checkpoint {init}: missing or incomplete (no {layout.STATE_FILE})")
        state = DC.load(init, model, optimizer, rng=True)
        if until_step is not None and state.step > until_step:
            raise RunError(f"init checkpoint {init} is at step {state.step}, past until_step={until_step}")
        # A fork inherits lr_scale (a guard's LR cut): "decay from whatever the LR was at k".
        return _from_state(state, "init", init)
    torch.manual_seed(cfg.train.seed)
    return StartState(0, 0, 0.0, "start")


def _check_schedule_free(cfg: RunConfig, parallel: str) -> None:
    """What schedule-free AdamW cannot be combined with (yet), refused before the first step."""
    what = "schedulefree-adamw"
    if parallel == "fsdp":
        raise ConfigError(f'optim.name = "{what}" with FSDP: not supported (its averaged weights are computed '
                          "per process from full parameters); train it with one process or DDP")
    for section, why in (("guard", "its restores rewrite AdamW moments"),
                         ("pma", "its in-memory snapshots hold the train-mode weights")):
        if getattr(cfg, section) is not None:
            raise ConfigError(f'optim.name = "{what}" with [{section}]: not supported ({why}); merge the '
                              "checkpoints on disk instead (they hold the averaged weights)")


def _from_state(state: CheckpointState, event: str, path: Path) -> StartState:
    return StartState(state.step, state.tokens, state.flops, event, state.lr_scale, state.data_offset, state.eval_loss, path)


@dataclass
class Branch:
    """A branch ready to step: built by :func:`start_branch`, driven by the loop."""

    cfg: RunConfig
    run_dir: Path
    branch: str
    device: torch.device
    dist: D.DistInfo
    micro: int
    data: Any
    model: torch.nn.Module
    wrapped: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Any
    spec: dict[str, Any]
    init: str | Path | None
    callbacks: tuple[Callback, ...]
    eval_set: list[tuple[torch.Tensor, torch.Tensor]]
    autocast: Callable[[], contextlib.AbstractContextManager]
    logger: MetricsLogger
    ctx: TrainContext
    start: StartState

    def position(self, step: int) -> tuple[int, float]:
        """Tokens and FLOPs after global step ``step`` (counted from where this process started)."""
        tps = self.cfg.train.tokens_per_step
        n = (step - self.start.step) * tps
        return self.start.tokens + n, self.start.flops + n * float(self.cfg.model.flops_per_token(self.cfg.train.seq_len))


def start_branch(cfg: RunConfig, run_dir: Path, branch: str, schedule: Any | None, *, until_step: int | None,
                 init: str | Path | None, callbacks: Sequence[Callback], data: Any | None) -> Branch | tuple[CheckpointState, Path]:
    """Build a :class:`Branch` (device, processes, data, model, optimizer, callbacks, start state),
    or return ``(state, path)`` of a branch that is already at ``until_step``."""
    device = resolve_device(cfg.train.device)
    dist = D.setup(device)
    micro = micro_batch_size(cfg, dist.world)
    if cfg.train.threads and device.type == "cpu":
        torch.set_num_threads(cfg.train.threads)
    schedule = cfg.schedule_object() if schedule is None else schedule
    data = load_dataset(cfg.data) if data is None else data
    check_vocab(cfg, data)
    model = build_model(cfg.model, seed=cfg.train.seed, device=device)
    net = P.wrap_model(model, cfg, dist, device)  # DDP | FSDP2 (in place: the optimizer after) | model
    optimizer = build_optimizer(model, cfg.optim)
    if is_schedule_free(optimizer):
        _check_schedule_free(cfg, P.kind(net, dist))
    init, callbacks = callbacks_from_config(cfg, run_dir, branch, init=init, given=callbacks)
    start = start_state(cfg, run_dir, branch, model, optimizer, init, until_step)
    if not isinstance(start, StartState):
        return start
    logger = MetricsLogger(layout.metrics_path(run_dir, branch), enabled=dist.is_main,
                           tensorboard=cfg.train.tensorboard, resume_step=start.step)
    eval_set = heldout_set(cfg, data)  # the one definition, shared with `riverbed eval`
    autocast = autocast_factory(device, cfg.train.dtype)

    def held_out_loss(m: torch.nn.Module | None) -> float:  # ctx.evaluate(): what callbacks evaluate with
        with eval_weights(model, optimizer) if m is None else contextlib.nullcontext():  # schedule-free: x
            return evaluate(model if m is None else m, eval_set, device=device, autocast=autocast, chunk=micro,
                            dist=P.eval_dist(net, dist))

    ctx = TrainContext(cfg=cfg, run_dir=run_dir, branch=branch, model=model, optimizer=optimizer, schedule=schedule,
                       logger=logger, dist=dist, evaluator=held_out_loss)
    ctx.step, ctx.tokens, ctx.flops = start.step, start.tokens, start.flops
    ctx.lr_scale, ctx.data_offset, ctx.last_eval_loss = start.lr_scale, start.data_offset, start.eval_loss
    return Branch(cfg, run_dir, branch, device, dist, micro, data, model, net, optimizer,
                  schedule, schedule_to_spec(schedule), init, callbacks, eval_set, autocast, logger, ctx, start)
