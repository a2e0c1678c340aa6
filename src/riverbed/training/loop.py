"""The step loop: ``train_branch`` trains one branch of a run to a given global step.

>>> from riverbed.training import train_branch                      # doctest: +SKIP
>>> res = train_branch(cfg, "runs/x", "main", until_step=1000)       # doctest: +SKIP
>>> res.step, res.last_eval_loss                                     # doctest: +SKIP
(1000, 2.31)

Global numbering: ``step`` counts optimizer steps completed since the run started, whatever
branch; the update with 0-based index s uses LR ``optim.lr * schedule.multiplier(s)`` and the
global batch s (a pure function of (seed, s), so resuming or forking needs no data state).
A checkpoint ``step_k`` holds the model after k updates; a branch forked from it runs steps
k, k+1, ... so ``DecayBranch(main, fork_step=k, ...)`` lines up with no off-by-one.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from riverbed.training import distributed_checkpoint as DC
from riverbed.checkpoints import layout
from riverbed.io.atomic import cleanup_stale_tmp
from riverbed.checkpoints.layout import writer_lock
from riverbed.checkpoints.schema import CheckpointState, DataPosition
from riverbed.checkpoints.state import read_component_files
from riverbed.config import RunConfig
from riverbed.data import get_batch
from riverbed.errors import ConfigError
from riverbed.training import distributed as D
from riverbed.training import parallel as P
from riverbed.training.callbacks import Callback
from riverbed.checkpoints.schedule_free import eval_weights
from riverbed.training.evaluate import eval_row, evaluate_stats
from riverbed.training.step_progress import StepProgress
from riverbed.training.devices import micro_batch_size, resolve_device
from riverbed.training.setup import Branch, check_vocab, start_branch
from riverbed.training.step import apply_restore, train_step

__all__ = ["BranchResult", "train_branch", "check_vocab", "micro_batch_size", "resolve_device"]


@dataclass(frozen=True)
class BranchResult:
    """Where a branch ended: the global step, its tokens and FLOPs, the last losses, and the
    final checkpoint directory. ``stopped`` says why it ended early (a callback), else None."""

    step: int
    tokens: int
    flops: float
    last_train_loss: float | None
    last_eval_loss: float | None
    checkpoint: Path | None
    stopped: str | None = None


def train_branch(
    cfg: RunConfig,
    run_dir: str | Path,
    branch: str = layout.MAIN,
    schedule: Any | None = None,
    *,
    until_step: int | None,
    init: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    data: Any | None = None,
) -> BranchResult:
    """Train ``branch`` of the run at ``run_dir`` until global step ``until_step`` (None = until
    a callback stops it or Ctrl-C).

    Start: the newest checkpoint of the branch (exact resume); else ``init`` (a checkpoint
    directory, e.g. main's ``step_k``: model, AdamW state, RNG and position, numbering
    continues from k); else step 0 from ``cfg.train.seed``. ``schedule`` defaults to the
    config's [schedule]. A checkpoint and an evaluation are always written at the end. A
    branch already at or past ``until_step`` is returned as it is, without training.
    Ctrl-C (single process) stops at the next step boundary, saves a checkpoint there, and
    re-raises KeyboardInterrupt. Rank 0 holds the branch's writer lock (LockedError for a second
    writer); a checkpoint with NaN/inf weights is never resumed or forked from. ``callbacks``
    are :class:`~riverbed.training.callbacks.Callback` instances; those the config's [guard]
    and [pma] sections ask for are added (riverbed.training.setup.callbacks_from_config).
    """
    if until_step is not None and until_step < 0:
        raise ConfigError(f"until_step={until_step} must be >= 0")
    lock = writer_lock(run_dir, branch) if D.from_env().is_main else contextlib.nullcontext()
    with lock:
        # Leftovers of a killed writer of this branch (half-written checkpoints, old copies).
        cleanup_stale_tmp(layout.checkpoints_dir(run_dir, branch))
        cleanup_stale_tmp(layout.branch_dir(run_dir, branch))
        b = start_branch(cfg, Path(run_dir), branch, schedule, until_step=until_step, init=init,
                         callbacks=callbacks, data=data)
        if not isinstance(b, Branch):  # already at until_step
            state, path = b
            return BranchResult(state.step, state.tokens, state.flops, state.train_loss, state.eval_loss, path)
        return _loop(b, until_step, progress)


def _loop(b: Branch, until_step: int | None, progress: bool) -> BranchResult:
    """Step until ``until_step``; callbacks at the named points (riverbed.training.callbacks)."""
    ctx, t, tps = b.ctx, b.cfg.train, b.cfg.train.tokens_per_step
    b.logger.log({"kind": "event", "step": ctx.step, "tokens": ctx.tokens, "event": b.start.event,
                  "world_size": b.dist.world, "schedule": b.spec,
                  **({"init": str(b.init)} if b.start.event == "init" else {})})
    last_ckpt: Path | None = None
    last_eval_step = last_ckpt_step = -1
    if b.start.event == "resume" and b.start.checkpoint is not None:
        files = read_component_files(b.start.checkpoint)
        for cb in b.callbacks:
            cb.load_checkpoint_files(ctx, files)
    bar = StepProgress(enabled=progress and b.dist.is_main, start=ctx.step, total=until_step, branch=b.branch)
    tick_time, tick_step = time.perf_counter(), ctx.step
    b.model.train()
    with bar, b.logger, _interrupt_flag() as interrupted:
        while until_step is None or ctx.step < until_step:
            s = ctx.step
            # LR: a pure function of the global step; data: global batch s + data_offset (the
            # spike guard's "skip" moves the offset), split as [rank][micro-batch].
            ctx.lr = b.cfg.optim.lr * float(b.schedule.multiplier(s)) * ctx.lr_scale
            x, y = get_batch(b.data.train, s + ctx.data_offset, t.batch_size, t.seq_len, t.seed, b.dist.rank, b.dist.world)
            out = train_step(b.wrapped, b.optimizer, x, y, lr=ctx.lr, micro=b.micro, accum=t.grad_accum,
                             clip=b.cfg.optim.grad_clip, autocast=b.autocast, dist=b.dist)
            ctx.step = s + 1
            ctx.tokens, ctx.flops = b.position(ctx.step)
            ctx._set_step_tensors(out.loss, out.grad_norm)
            bar.advance()
            if ctx.step % t.log_every == 0:
                now = time.perf_counter()
                rate = (ctx.step - tick_step) * tps / max(now - tick_time, 1e-9)
                tick_time, tick_step = now, ctx.step
                b.logger.log({"kind": "train", "step": ctx.step, "tokens": ctx.tokens, "flops": ctx.flops, "lr": ctx.lr,
                              "loss": ctx.train_loss, "grad_norm": ctx.grad_norm, "tokens_per_s": rate})
                bar.show(loss=ctx.train_loss, tokens_per_s=rate, eval_loss=ctx.last_eval_loss, extra=ctx.bar_extra)
            for cb in b.callbacks:
                cb.on_step_end(ctx)
            if ctx.restore_request is not None and apply_restore(ctx, b.position):
                last_eval_step = last_ckpt_step = -1  # what was saved past the rewind is stale
                continue  # rewound: the step just done is no longer on the trajectory
            final = until_step is not None and ctx.step >= until_step
            if t.eval_every and ctx.step % t.eval_every == 0 and not final:
                _evaluate(b)
                last_eval_step = ctx.step
                bar.show(loss=ctx.train_loss, eval_loss=ctx.last_eval_loss, extra=ctx.bar_extra)  # the bar shows this step's eval
            if _ckpt_due(t, ctx.step, tps) and not final:
                last_ckpt, last_ckpt_step = _save(b, "periodic"), ctx.step
            if ctx.stop_reason is not None:
                break
            if _interrupted(interrupted, b.dist, ctx.step, t.log_every):
                if last_ckpt_step != ctx.step:
                    _save(b, "interrupted")
                raise KeyboardInterrupt(f"interrupted at step {ctx.step}; checkpoint saved")
        # The end of a branch is always evaluated and saved (unless that step just was).
        if last_eval_step != ctx.step:
            _evaluate(b)
            bar.show(loss=ctx.train_loss, eval_loss=ctx.last_eval_loss, extra=ctx.bar_extra)
        if last_ckpt_step != ctx.step:
            last_ckpt = _save(b, "final" if ctx.stop_reason is None else "stopped")
    return BranchResult(ctx.step, ctx.tokens, ctx.flops, ctx.train_loss, ctx.last_eval_loss, last_ckpt, ctx.stop_reason)


def _evaluate(b: Branch) -> None:
    """The held-out evaluation: one forward pass gives the loss and the per-bucket losses."""
    ctx = b.ctx
    with eval_weights(b.model, b.optimizer):  # schedule-free: its averaged weights, never the train-mode ones
        stats = evaluate_stats(b.model, b.eval_set, device=b.device, autocast=b.autocast, chunk=b.micro,
                               dist=P.eval_dist(b.wrapped, b.dist), buckets=getattr(b.data, "buckets", None))
    ctx.last_eval_loss = stats.loss
    b.logger.log({"kind": "eval", "step": ctx.step, "tokens": ctx.tokens, "flops": ctx.flops,
                  **eval_row(stats, b.data, b.eval_set)})
    for cb in b.callbacks:
        cb.on_eval(ctx, {"eval_loss": stats.loss})


def _save(b: Branch, reason: str) -> Path:
    """Write the checkpoint of ``ctx.step`` (rank 0; every rank its shards under FSDP), with the
    callbacks' component files (rank 0's) inside it before it becomes visible; then ``on_checkpoint``."""
    ctx, cfg = b.ctx, b.cfg
    path = layout.checkpoint_dir(b.run_dir, b.branch, ctx.step)
    files: dict[str, Any] = {}
    if b.dist.is_main:
        for cb in b.callbacks:
            files.update(cb.checkpoint_files(ctx))
    position = ctx.step + ctx.data_offset
    state = CheckpointState(
        step=ctx.step, tokens=ctx.tokens, flops=ctx.flops, branch=b.branch, schedule=b.spec, lr_scale=ctx.lr_scale,
        data=DataPosition(position, position * cfg.train.batch_size, cfg.train.seed, ctx.data_offset),
        train_loss=ctx.train_loss, eval_loss=ctx.last_eval_loss, init=None if b.init is None else str(b.init),
        reason=reason, world_size=b.dist.world, parallel=P.kind(b.wrapped, b.dist), config=cfg.to_dict())
    DC.save(path, b.model, b.optimizer, state, b.dist, files=files)  # ends with a barrier on every rank
    ref = layout.CheckpointRef(ctx.step, path)
    for cb in b.callbacks:
        cb.on_checkpoint(ctx, ref)
    return path


def _ckpt_due(t: Any, step: int, tps: int) -> bool:
    if t.ckpt_every:
        return step % t.ckpt_every == 0
    if t.ckpt_every_tokens:
        # The first step whose token count reaches each multiple of the interval.
        return (step * tps) // t.ckpt_every_tokens > ((step - 1) * tps) // t.ckpt_every_tokens
    return False


def _interrupted(flag: threading.Event, dist: D.DistInfo, step: int, every: int) -> bool:
    # Under DDP all ranks must leave at the same step: agree on the flag (one tiny
    # all-reduce) at logging steps only, to keep the hot loop free of host syncs.
    if not dist.enabled:
        return flag.is_set()
    return step % every == 0 and D.any_flag(flag.is_set(), dist)


@contextlib.contextmanager
def _interrupt_flag() -> Iterator[threading.Event]:
    """Turn the first Ctrl-C into a flag checked at step boundaries, where the model and the
    optimizer are consistent and a checkpoint is safe; a second Ctrl-C interrupts at once.
    Only in the main thread of the main interpreter (signal handlers cannot be set elsewhere)."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        flag.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
