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

import torch

from riverbed.checkpoints import layout
from riverbed.checkpoints.atomic import cleanup_stale_tmp
from riverbed.checkpoints.finite import require_finite
from riverbed.checkpoints.lock import writer_lock
from riverbed.checkpoints.state import apply_model_tensors, load_checkpoint, load_optimizer_tensors, read_state, save_checkpoint
from riverbed.config import RunConfig
from riverbed.errors import CheckpointError, ConfigError, RunError
from riverbed.training import distributed as D
from riverbed.training.callbacks import TrainContext
from riverbed.training.evaluate import autocast_factory, eval_extras, evaluate, heldout_set
from riverbed.training.metrics import MetricsLogger
from riverbed.training.optim import build_optimizer, set_lr
from riverbed.training.progress import StepProgress


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


def resolve_device(name: str, dist: D.DistInfo | None = None) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("train.device='cuda' but CUDA is not available")
        return torch.device("cuda", (dist or D.from_env()).local_rank)
    return torch.device("cpu")


def micro_batch_size(cfg: RunConfig, world: int) -> int:
    """Sequences per micro-batch per process; the global batch must split evenly."""
    t = cfg.train
    if t.batch_size % (world * t.grad_accum):
        raise ConfigError(f"train.batch_size={t.batch_size} is not divisible by processes x train.grad_accum = "
                          f"{world} x {t.grad_accum}: the global batch must split evenly (change one of them)")
    return t.batch_size // (world * t.grad_accum)


def train_branch(
    cfg: RunConfig,
    run_dir: str | Path,
    branch: str = layout.MAIN,
    schedule: Any | None = None,
    *,
    until_step: int | None,
    init: str | Path | None = None,
    callbacks: Sequence[Any] = (),
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
    writer); a checkpoint with NaN/inf weights is never resumed or forked from.
    """
    lock = writer_lock(run_dir, branch) if D.from_env().is_main else contextlib.nullcontext()
    with lock:
        # Leftovers of a killed writer of this branch (half-written checkpoints, old copies).
        cleanup_stale_tmp(layout.checkpoints_dir(run_dir, branch))
        cleanup_stale_tmp(layout.branch_dir(run_dir, branch))
        return _train_branch(cfg, run_dir, branch, schedule, until_step=until_step, init=init,
                             callbacks=callbacks, progress=progress, data=data)


def check_vocab(cfg: RunConfig, data: Any) -> None:
    """The model's vocabulary must hold every token id of the data."""
    if data.vocab_size > cfg.model.vocab_size:
        raise ConfigError(f"model.vocab_size={cfg.model.vocab_size} is smaller than the data's vocabulary "
                          f"({data.vocab_size} tokens, data.tokenizer={getattr(cfg.data, 'tokenizer', '?')!r})")


def _train_branch(cfg: RunConfig, run_dir: str | Path, branch: str, schedule: Any | None, *, until_step: int | None,
                  init: str | Path | None, callbacks: Sequence[Any], progress: bool, data: Any | None) -> BranchResult:
    """train_branch without the lock (the caller holds it)."""
    run_dir = Path(run_dir)
    if until_step is not None and until_step < 0:
        raise ConfigError(f"until_step={until_step} must be >= 0")
    device = resolve_device(cfg.train.device)
    dist = D.setup(device)
    micro = micro_batch_size(cfg, dist.world)
    if cfg.train.threads and device.type == "cpu":
        torch.set_num_threads(cfg.train.threads)
    if schedule is None:
        schedule = cfg.schedule_object()
    if data is None:
        from riverbed.data import load_dataset

        data = load_dataset(cfg.data)
    check_vocab(cfg, data)

    from riverbed.model import build_model

    model = build_model(cfg.model, seed=cfg.train.seed, device=device)
    optimizer = build_optimizer(model, cfg.optim)
    if init is None and branch == layout.MAIN and getattr(cfg, "init", None) is not None \
            and not layout.list_checkpoints(run_dir, branch):
        # [init] from_merge: a new run starts from a merge of another run's checkpoints (PMA-init)
        from riverbed.training.merged_init import ensure_merged_init

        init = ensure_merged_init(cfg.init, run_dir, seed=cfg.train.seed)
    if getattr(cfg, "guard", None) is not None and not any(getattr(cb, "is_spike_guard", False) for cb in callbacks):
        # [guard]: the spike guard (riverbed.training.guard_callback) judges every step
        from riverbed.training.guard_callback import SpikeGuard

        callbacks = (*callbacks, SpikeGuard(cfg.guard))
    if getattr(cfg, "pma", None) is not None and not any(getattr(cb, "is_pma_monitor", False) for cb in callbacks):
        # [pma]: evaluate the merge of the last N checkpoints at each evaluation (riverbed.merging.monitor)
        from riverbed.merging.monitor import PMAMonitor

        callbacks = (*callbacks, PMAMonitor(cfg.pma))
    if getattr(cfg.train, "keep", ()) and branch == layout.MAIN:  # [train] keep: prune what the retention plan does not need
        from riverbed.training.retention_callback import RetentionCallback
        callbacks = (*callbacks, RetentionCallback.from_config(cfg))
    start = _start_state(cfg, run_dir, branch, model, optimizer, init, until_step)
    if start.get("done"):
        return _result_from_state(start["state"], start["path"])

    step = int(start["step"])
    tps = cfg.train.tokens_per_step
    fpt = float(cfg.model.flops_per_token(cfg.train.seq_len))
    tokens0, flops0, step0 = int(start["tokens"]), float(start["flops"]), step
    from riverbed.schedules import schedule_to_spec

    spec = schedule_to_spec(schedule)
    ddp = model
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    autocast = autocast_factory(device, cfg.train.dtype)
    from riverbed.data import get_batch

    eval_set = heldout_set(cfg, data)  # the one definition, shared with `riverbed eval`
    logger = MetricsLogger(layout.metrics_path(run_dir, branch), enabled=dist.is_main,
                           tensorboard=cfg.train.tensorboard, resume_step=step)

    def run_eval(m: torch.nn.Module | None = None) -> float:
        return evaluate(m if m is not None else model, eval_set, device=device, autocast=autocast,
                        chunk=micro, dist=dist)

    ctx = TrainContext(cfg=cfg, run_dir=run_dir, branch=branch, model=model, optimizer=optimizer,
                       schedule=schedule, logger=logger, dist=dist, evaluator=run_eval)
    ctx.step, ctx.tokens, ctx.flops = step, tokens0, flops0
    ctx.lr_scale = float(start.get("lr_scale", 1.0))
    ctx.data_offset = int(start.get("data_offset", 0))
    ctx.last_eval_loss = start.get("eval_loss")
    logger.log({"kind": "event", "step": step, "tokens": tokens0, "event": start["event"], "world_size": dist.world,
                "schedule": spec, **({"init": str(init)} if start["event"] == "init" else {})})

    def save(reason: str) -> Path:
        path = layout.checkpoint_dir(run_dir, branch, ctx.step)
        if dist.is_main:
            state = {
                "step": ctx.step, "tokens": ctx.tokens, "flops": ctx.flops, "branch": branch, "schedule": spec,
                "lr_scale": ctx.lr_scale,
                "data": {"position": ctx.step + ctx.data_offset, "sample": (ctx.step + ctx.data_offset) * cfg.train.batch_size,
                         "seed": cfg.train.seed, "offset": ctx.data_offset},
                "metrics": {"train_loss": ctx.train_loss, "eval_loss": ctx.last_eval_loss},
                "init": str(init) if init is not None else None, "reason": reason, "world_size": dist.world,
                "config": cfg.to_dict(),
            }
            save_checkpoint(path, model, optimizer, state, overwrite=True)
        D.barrier(dist)
        ref = layout.CheckpointRef(ctx.step, path)
        for cb in callbacks:
            if hasattr(cb, "on_checkpoint"):
                cb.on_checkpoint(ctx, ref)
        return path

    def do_eval() -> None:
        ctx.last_eval_loss = run_eval()
        logger.log({"kind": "eval", "step": ctx.step, "tokens": ctx.tokens, "flops": ctx.flops, "eval_loss": ctx.last_eval_loss,
                    **eval_extras(model, data, eval_set, device=device, autocast=autocast, chunk=micro, dist=dist)})
        for cb in callbacks:
            if hasattr(cb, "on_eval"):
                cb.on_eval(ctx, {"eval_loss": ctx.last_eval_loss})

    t = cfg.train
    accum, clip, base_lr, seed = t.grad_accum, cfg.optim.grad_clip, cfg.optim.lr, t.seed
    params = [p for p in model.parameters() if p.requires_grad]
    last_ckpt: Path | None = None
    last_eval_step = last_ckpt_step = -1
    bar = StepProgress(enabled=progress and dist.is_main, start=step, total=until_step, branch=branch)
    tick_time, tick_step = time.perf_counter(), step
    model.train()
    with bar, logger, _interrupt_flag() as interrupted:
        while until_step is None or ctx.step < until_step:
            s = ctx.step
            # ------------------------------------------------------------------ the step --
            # LR from the schedule (pure function of the global step), then the global batch
            # s split as [rank][micro-batch]; losses are scaled so the gradient is the mean
            # over the global batch; DDP syncs gradients only on the last micro-batch.
            ctx.lr = base_lr * float(schedule.multiplier(s)) * ctx.lr_scale
            set_lr(optimizer, ctx.lr)
            # data position = step + data_offset (the spike guard's "skip" moves the offset)
            x, y = get_batch(data.train, s + ctx.data_offset, t.batch_size, t.seq_len, seed, dist.rank, dist.world)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss_sum = torch.zeros((), device=device)
            for i in range(accum):
                xs, ys = x[i * micro:(i + 1) * micro], y[i * micro:(i + 1) * micro]
                sync = ddp.no_sync() if (dist.enabled and i < accum - 1) else contextlib.nullcontext()
                with sync:
                    with autocast():
                        out = ddp(xs, ys)
                        loss = (out.loss + out.aux_loss) / accum
                    loss.backward()
                loss_sum += out.loss.detach()
            if clip > 0:
                grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
            else:
                grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            # -------------------------------------------------------------- end of step --
            ctx.step = s + 1
            ctx.tokens = tokens0 + (ctx.step - step0) * tps
            ctx.flops = flops0 + (ctx.step - step0) * tps * fpt
            ctx._set_step_tensors(D.mean_(loss_sum.div_(accum), dist), grad_norm)
            bar.advance()
            if ctx.step % t.log_every == 0:
                now = time.perf_counter()
                rate = (ctx.step - tick_step) * tps / max(now - tick_time, 1e-9)
                tick_time, tick_step = now, ctx.step
                logger.log({"kind": "train", "step": ctx.step, "tokens": ctx.tokens, "flops": ctx.flops, "lr": ctx.lr,
                            "loss": ctx.train_loss, "grad_norm": ctx.grad_norm, "tokens_per_s": rate})
                bar.show(loss=ctx.train_loss, tokens_per_s=rate, eval_loss=ctx.last_eval_loss)
            for cb in callbacks:
                if hasattr(cb, "on_step_end"):
                    cb.on_step_end(ctx)
            if ctx.restore_request is not None:
                if _apply_restore(ctx, model, optimizer, tokens0, flops0, step0, tps, fpt):
                    last_eval_step = last_ckpt_step = -1  # what was saved past the rewind is stale
                    continue  # rewound: the step just done is no longer on the trajectory
            final = until_step is not None and ctx.step >= until_step
            if t.eval_every and ctx.step % t.eval_every == 0 and not final:
                do_eval()
                last_eval_step = ctx.step
                bar.show(loss=ctx.train_loss, eval_loss=ctx.last_eval_loss)  # the bar shows this step's eval
            if _ckpt_due(t, ctx.step, tps) and not final:
                last_ckpt, last_ckpt_step = save("periodic"), ctx.step
            if ctx.stop_reason is not None:
                break
            if _interrupted(interrupted, dist, ctx.step, t.log_every):
                if last_ckpt_step != ctx.step:
                    save("interrupted")
                raise KeyboardInterrupt(f"interrupted at step {ctx.step}; checkpoint saved")
        # The end of a branch is always evaluated and saved (unless that step just was).
        if last_eval_step != ctx.step:
            do_eval()
            bar.show(loss=ctx.train_loss, eval_loss=ctx.last_eval_loss)
        if last_ckpt_step != ctx.step:
            last_ckpt = save("final" if ctx.stop_reason is None else "stopped")
    return BranchResult(ctx.step, ctx.tokens, ctx.flops, ctx.train_loss, ctx.last_eval_loss, last_ckpt, ctx.stop_reason)


def _ckpt_due(t: Any, step: int, tps: int) -> bool:
    if t.ckpt_every:
        return step % t.ckpt_every == 0
    if t.ckpt_every_tokens:
        # The first step whose token count reaches each multiple of the interval.
        return (step * tps) // t.ckpt_every_tokens > ((step - 1) * tps) // t.ckpt_every_tokens
    return False


def _start_state(cfg: RunConfig, run_dir: Path, branch: str, model: torch.nn.Module,
                 optimizer: torch.optim.Optimizer, init: str | Path | None, until_step: int | None) -> dict[str, Any]:
    """Resume (newest checkpoint of the branch), fork (``init``) or start from scratch."""
    refs = layout.list_checkpoints(run_dir, branch)
    if refs:
        ref = refs[-1]
        if until_step is not None and ref.step >= until_step:
            return {"done": True, "state": read_state(ref.path), "path": ref.path}
        state = load_checkpoint(ref.path, model, optimizer, rng=True)
        require_finite(model, ref.path)
        return _from_state(state, "resume")
    if init is not None:
        init = Path(init)
        if not (init / layout.STATE_FILE).is_file():
            raise CheckpointError(f"init checkpoint {init}: missing or incomplete (no {layout.STATE_FILE})")
        state = load_checkpoint(init, model, optimizer, rng=True)
        require_finite(model, init)
        if until_step is not None and int(state["step"]) > until_step:
            raise RunError(f"init checkpoint {init} is at step {state['step']}, past until_step={until_step}")
        # A fork inherits lr_scale (a guard's LR cut): "decay from whatever the LR was at k".
        return _from_state(state, "init")
    torch.manual_seed(cfg.train.seed)
    return {"step": 0, "tokens": 0, "flops": 0.0, "event": "start", "lr_scale": 1.0}


def _from_state(state: dict[str, Any], event: str) -> dict[str, Any]:
    metrics = state.get("metrics") or {}
    return {"step": int(state["step"]), "tokens": int(state.get("tokens", 0)), "flops": float(state.get("flops", 0.0)),
            "lr_scale": float(state.get("lr_scale", 1.0)), "eval_loss": metrics.get("eval_loss"), "event": event,
            "data_offset": int((state.get("data") or {}).get("offset", 0))}


def _result_from_state(state: dict[str, Any], path: Path) -> BranchResult:
    metrics = state.get("metrics") or {}
    return BranchResult(int(state["step"]), int(state.get("tokens", 0)), float(state.get("flops", 0.0)),
                        metrics.get("train_loss"), metrics.get("eval_loss"), path)


def _apply_restore(ctx: TrainContext, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   tokens0: int, flops0: float, step0: int, tps: int, fpt: float) -> bool:
    """Apply ``ctx.restore_request``; True when the step was rewound."""
    req, ctx.restore_request = ctx.restore_request, None
    apply_model_tensors(model, req.model_state, source="restore(model_state)")
    if req.reset_optimizer:
        optimizer.state.clear()
    elif req.optimizer_state is not None:
        load_optimizer_tensors(req.optimizer_state, model, optimizer, source="restore(optimizer_state)")
    if req.lr_scale is not None:
        ctx.lr_scale = float(req.lr_scale)
    rewound = req.step is not None and req.step != ctx.step
    event = {"kind": "event", "step": ctx.step, "tokens": ctx.tokens, "event": "restore", "reason": req.reason,
             "lr_scale": ctx.lr_scale, "to_step": req.step if req.step is not None else ctx.step,
             "optimizer": "reset" if req.reset_optimizer else ("loaded" if req.optimizer_state is not None else "kept")}
    ctx.logger.log(event)
    if rewound:
        ctx.step = int(req.step)
        ctx.tokens = tokens0 + (ctx.step - step0) * tps
        ctx.flops = flops0 + (ctx.step - step0) * tps * fpt
    return rewound


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
