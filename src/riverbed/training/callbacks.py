"""Callbacks: what plugs into the step loop (PMA monitor, spike guard, user hooks).

A callback subclasses :class:`Callback` and overrides the hooks it needs (each defaults to
doing nothing)::

    on_step_end(ctx)              after every optimizer step (ctx.step = steps completed)
    on_eval(ctx, metrics)         after each held-out evaluation; metrics = {"eval_loss": ...}
    checkpoint_files(ctx)         {file name: JSON object} to store inside the checkpoint being
                                  written, before it becomes visible (the spike guard's guard.json)
    load_checkpoint_files(ctx, files)  its mirror: before the first step of a resumed branch, the
                                  {file name: JSON object} files of the checkpoint it resumes from
    on_checkpoint(ctx, ref)       after a checkpoint is on disk; ref = CheckpointRef(step, path)

Order at the end of step s: metrics row (every log_every) -> ``on_step_end`` -> a requested
restore is applied -> evaluation (if due) + ``on_eval`` -> checkpoint (if due: ``checkpoint_files``, the
atomic write, ``on_checkpoint``) -> a requested stop ends the branch (final evaluation and checkpoint).

Under DDP every rank runs every callback. ``ctx.train_loss`` / ``ctx.grad_norm`` are global
(all-reduced), so decisions taken from them agree across ranks; a callback that writes files
must do so only when ``ctx.is_main``. ``ctx.evaluate()`` is collective (call it on all ranks).

Steering the loop (the spike guard's contract)::

    ctx.restore(model_state, optimizer_state=None, reset_optimizer=False, lr_scale=None,
                step=None, reason="")
        Load these weights (HF-named tensors, e.g. a merge of the last checkpoints) into the
        model after the current callbacks; optimizer_state (named tensors as in
        optimizer.safetensors) replaces the AdamW moments, reset_optimizer=True clears them,
        neither keeps them. lr_scale (persisted in checkpoints) multiplies the scheduled LR
        from now on. step rewinds the global step (and with it tokens, FLOPs and the data
        position) so the next step executed is ``step``; None continues the numbering.
    ctx.restore_checkpoint(path, optimizer=True, lr_scale=None, rewind=True, reason="")
        The same from a checkpoint directory (rewind=True: continue from its step).
    ctx.stop(reason)
        End the branch after this step: the final evaluation and checkpoint are still written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from riverbed.checkpoints.layout import MODEL_FILE, OPTIMIZER_FILE, CheckpointRef
from riverbed.checkpoints.schema import read_state
from riverbed.config import RunConfig
from riverbed.runs.metrics import MetricsLogger

if TYPE_CHECKING:  # torch-free at import: experiments define their callbacks while the CLI parses
    import torch

    from riverbed.training.distributed import DistInfo


class Callback:
    """Base of everything that plugs into the step loop: override the hooks you need.

    >>> class Every100(Callback):
    ...     def on_step_end(self, ctx):
    ...         if ctx.step % 100 == 0:
    ...             ctx.log({"kind": "note", "lr": ctx.lr})
    """

    def on_step_end(self, ctx: TrainContext) -> None:
        """After every optimizer step (``ctx.step`` = steps completed)."""

    def on_eval(self, ctx: TrainContext, metrics: Mapping[str, float]) -> None:
        """After each held-out evaluation; ``metrics = {"eval_loss": ...}``."""

    def checkpoint_files(self, ctx: TrainContext) -> Mapping[str, Any]:
        """JSON files (``{name: object}``) to write into the checkpoint of ``ctx.step`` before it
        becomes visible, so the checkpoint and the component's state never disagree (rank 0)."""
        return {}

    def load_checkpoint_files(self, ctx: TrainContext, files: Mapping[str, Any]) -> None:
        """The mirror of :meth:`checkpoint_files`: once, before the first step of a branch that
        resumes, the component files of the checkpoint it resumes from (``{name: object}``, every
        rank). A fork or a fresh start calls nothing: its state starts afresh."""

    def on_checkpoint(self, ctx: TrainContext, ref: CheckpointRef) -> None:
        """After a checkpoint is on disk (every rank, after a barrier)."""


@dataclass
class RestoreRequest:
    model_state: Mapping[str, torch.Tensor]
    optimizer_state: Mapping[str, torch.Tensor] | None = None
    reset_optimizer: bool = False
    lr_scale: float | None = None
    step: int | None = None
    reason: str = ""


class TrainContext:
    """The loop's state as callbacks see it (one object, updated in place every step)."""

    def __init__(
        self,
        *,
        cfg: RunConfig,
        run_dir: Path,
        branch: str,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        schedule: Any,
        logger: MetricsLogger,
        dist: DistInfo,
        evaluator: Callable[[torch.nn.Module | None], float],
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.branch = branch
        self.model = model  # the bare module (never the DDP wrapper)
        self.optimizer = optimizer
        self.schedule = schedule
        self.logger = logger
        self.dist = dist
        self._evaluator = evaluator
        self.step = 0
        self.tokens = 0
        self.flops = 0.0
        self.lr = 0.0
        self.lr_scale = 1.0
        self.data_offset = 0
        """Batches skipped so far: step s trains on global batch s + data_offset (the spike
        guard's "skip" action raises it; persisted in state.json "data"."offset")."""
        self.last_eval_loss: float | None = None
        self.bar_extra: dict[str, str] = {}
        """Labelled values a callback adds to the progress bar's text (the forecast monitor's)."""
        self._loss: torch.Tensor | None = None
        self._grad_norm: torch.Tensor | None = None
        self._loss_value: float | None = None
        self._grad_norm_value: float | None = None
        self.restore_request: RestoreRequest | None = None
        self.stop_reason: str | None = None

    # ---- lazily materialised step values (a host sync only when someone reads them) ------
    def _set_step_tensors(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        self._loss, self._grad_norm = loss, grad_norm
        self._loss_value = self._grad_norm_value = None

    @property
    def train_loss(self) -> float | None:
        """Mean training loss (without the MoE aux loss) of the last step, over the global batch."""
        if self._loss_value is None and self._loss is not None:
            self._loss_value = float(self._loss.item())
        return self._loss_value

    @property
    def grad_norm(self) -> float | None:
        """Global gradient L2 norm of the last step, before clipping."""
        if self._grad_norm_value is None and self._grad_norm is not None:
            self._grad_norm_value = float(self._grad_norm.item())
        return self._grad_norm_value

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    # ---- helpers -------------------------------------------------------------------------
    def log(self, row: Mapping[str, Any]) -> None:
        """Write a metrics row stamped with the current step and tokens (rank 0 only)."""
        self.logger.log({"step": self.step, "tokens": self.tokens, **row})

    def evaluate(self, model: torch.nn.Module | None = None) -> float:
        """Held-out loss of ``model`` (default: the one being trained) on the run's fixed
        held-out batches. Collective under DDP."""
        return self._evaluator(model)

    # ---- steering ------------------------------------------------------------------------
    def restore(
        self,
        model_state: Mapping[str, torch.Tensor],
        optimizer_state: Mapping[str, torch.Tensor] | None = None,
        *,
        reset_optimizer: bool = False,
        lr_scale: float | None = None,
        step: int | None = None,
        reason: str = "",
    ) -> None:
        """Request that the loop reload these weights (see the module docstring)."""
        if optimizer_state is not None and reset_optimizer:
            raise ValueError("restore: give optimizer_state or reset_optimizer=True, not both")
        if lr_scale is not None and not lr_scale > 0:
            raise ValueError(f"restore: lr_scale={lr_scale!r} must be > 0")
        if step is not None and step < 0:
            raise ValueError(f"restore: step={step!r} must be >= 0")
        self.restore_request = RestoreRequest(model_state, optimizer_state, reset_optimizer, lr_scale, step, reason)

    def restore_checkpoint(
        self, path: str | Path, *, optimizer: bool = True, lr_scale: float | None = None, rewind: bool = True, reason: str = ""
    ) -> None:
        """Request a reload from a checkpoint directory (weights, and AdamW state with optimizer=True)."""
        from riverbed.checkpoints.state import read_safetensors  # lazy: torch (see the imports above)

        path = Path(path)
        state = read_state(path)
        model_state = read_safetensors(path / MODEL_FILE)
        opt_state = read_safetensors(path / OPTIMIZER_FILE) if optimizer else None
        self.restore(model_state, opt_state, lr_scale=lr_scale, step=state.step if rewind else None,
                     reason=reason or f"restore from {path}")

    def stop(self, reason: str = "stopped by a callback") -> None:
        """End the branch after the current step (final eval + checkpoint still happen)."""
        self.stop_reason = reason
