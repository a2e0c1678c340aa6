"""Hugging Face ``Trainer`` integration: riverbed schedules as its optimizer pair, the spike guard, a PMA monitor.

**Schedules.** :func:`riverbed_optimizers` returns the ``(optimizer, scheduler)`` pair for
``Trainer(optimizers=...)``: the optimizer Trainer itself would build from ``args`` (``optim``,
``learning_rate``, betas, eps), with Trainer's usual grouping (biases and norm weights without
weight decay, from transformers' own ``get_decay_parameter_names``), and a
:class:`~riverbed.schedules.torch.RiverbedLR` following a riverbed schedule. :func:`wsd_from_args`
builds a WSD from ``args`` (``max_steps``, ``warmup_steps``) and a decay length;
:func:`wsd_scheduler` wraps it for an optimizer of your own. Example::

    from transformers import Trainer, TrainingArguments
    from riverbed.integrations.hf import riverbed_optimizers, wsd_from_args

    args = TrainingArguments("out", max_steps=1000, warmup_steps=50, learning_rate=3e-4, weight_decay=0.1)
    optimizers = riverbed_optimizers(model, args, wsd_from_args(args, decay=0.2, shape="1-sqrt"))
    Trainer(model, args, train_dataset=ds, optimizers=optimizers).train()

Trainer saves the scheduler's state with each checkpoint and loads it on
``resume_from_checkpoint``. Trainer discards a single warning raised while it loads the scheduler,
so these helpers default to ``on_change="error"``: resuming with a schedule that would make the
LR jump raises ``ConfigError`` (``"warn"`` logs it on the ``riverbed.schedules`` logger and warns,
``"ignore"`` accepts it; for an intended decay branch see ``RiverbedLR.fork``).

**Spike guard.** :class:`PMAGuardCallback` runs riverbed's
:class:`~riverbed.integrations.snapshot_guard.SnapshotGuard` on Trainer's events: it snapshots the
model every ``every`` optimizer steps, judges every logged ``loss`` / ``grad_norm`` and on a spike
restores the merge of the last healthy snapshots (``action = "pma-init"``) or the newest healthy
one (``"rollback"``). Example::

    from riverbed.integrations.hf import PMAGuardCallback
    from riverbed.config.guard import GuardConfig

    guard = PMAGuardCallback(GuardConfig(action="pma-init", pma_count=3), every=100)
    args = TrainingArguments("out", logging_steps=1, logging_nan_inf_filter=False)
    Trainer(model, args, train_dataset=ds, callbacks=[guard]).train()
    print(guard.events)   # spike, recovery, ... (self-describing dicts)

Set ``logging_steps`` small: a spike is seen when it is logged. Set
``logging_nan_inf_filter=False`` so a NaN loss is logged as NaN (non-finite weights are caught
by the callback's own check either way). The ``Trainer`` cannot rewind its data loader, so after
a recovery training continues with the *next* batches: ``rollback`` and ``skip`` are the same
here, and the step counter (hence the LR schedule) keeps going. Single-process or DDP
(every rank restores identically); not for sharded (FSDP / DeepSpeed ZeRO-3) parameters.

**PMA monitor.** :class:`PMAMonitorCallback` keeps the last N weights at multiples of V steps
(:class:`~riverbed.merging.pma_snapshots.PMASnapshots`, as riverbed's own ``[pma]`` monitor)
and at every evaluation measures the merge's loss on the evaluation set: ``pma_eval_loss`` is added
to the metrics ``Trainer.evaluate()`` returns and logged through ``Trainer.log`` -- so it reaches
``state.log_history`` (hence ``trainer_state.json``) and every ``report_to`` dashboard
(TensorBoard, W&B, ...) beside ``eval_loss``. A callback cannot reach its Trainer by itself, so
attach it once the Trainer exists::

    pma = PMAMonitorCallback(PMAConfig(every=100, count=4)).attach(trainer)   # adds it too
    trainer.train()

Unattached, it still records ``pma_eval_loss`` in ``state.log_history`` and warns once that the
dashboards do not see it.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

try:
    from transformers import Trainer, TrainerCallback
except ImportError as exc:  # pragma: no cover - exercised only without transformers
    raise ImportError("riverbed.integrations.hf needs transformers: pip install 'riverbed[hf]'") from exc

from riverbed.errors import ConfigError
from riverbed.checkpoints.optimizer_state import (  # noqa: F401  (re-exported: public names of this module)
    load_optimizer_state_by_name,
    optimizer_state_by_name,
)
from riverbed.integrations.snapshot_guard import SnapshotGuard
from riverbed.merging.pma_snapshots import METRIC, PMAConfig, PMASnapshots
from riverbed.schedules.core import Schedule
from riverbed.schedules.torch import OnChange, RiverbedLR
from riverbed.schedules.wsd import WSD

# ---- schedules ---------------------------------------------------------------------------------


def decay_parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Trainer's two parameter groups: weight decay for most weights, none for biases and norms."""
    # transformers' own rule (name patterns + LayerNorm modules). It is an instance method only so
    # that Trainer subclasses can override it; it reads nothing from self.
    decay = set(Trainer.get_decay_parameter_names(None, model))  # type: ignore[arg-type]
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for n, p in params if n in decay], "weight_decay": weight_decay},
        {"params": [p for n, p in params if n not in decay], "weight_decay": 0.0},
    ]


def training_steps(args: Any, num_training_steps: int | None = None) -> int:
    """The run length in optimizer steps: ``num_training_steps`` or ``args.max_steps``."""
    n = num_training_steps if num_training_steps is not None else getattr(args, "max_steps", -1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"num_training_steps: give it (or args.max_steps > 0) to size the schedule, got {n!r}; "
                          "an epoch-based run's length is len(train_dataloader) // gradient_accumulation_steps "
                          "* num_train_epochs")
    return n


def wsd_from_args(args: Any, *, decay: int | float, shape: str = "1-sqrt", min_ratio: float = 0.0,
                  num_training_steps: int | None = None, **kw: Any) -> WSD:
    """A riverbed WSD sized by Trainer's ``args``: ``max_steps`` long, ``args``' warmup, then ``decay``.

    ``decay`` is a step count (an int >= 1) or a fraction of the run (a float in (0, 1)). Other
    keywords (``warmup_shape``, ``warmup_start``, ``half_life``, ``stages``) go to :class:`WSD`.
    """
    total = training_steps(args, num_training_steps)
    warmup = int(args.get_warmup_steps(total)) if hasattr(args, "get_warmup_steps") else int(args.warmup_steps)
    if isinstance(decay, float) and not isinstance(decay, bool):
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"decay={decay!r}: a float is a fraction of the run, expected in (0, 1)")
        decay_steps = max(1, math.ceil(decay * total))
    elif isinstance(decay, int) and not isinstance(decay, bool):
        decay_steps = decay
    else:
        raise ConfigError(f"decay={decay!r}: expected steps (int) or a fraction of the run (float)")
    return WSD.from_total(total, warmup, decay_steps, shape=shape, min_ratio=min_ratio, **kw)


def wsd_scheduler(optimizer: torch.optim.Optimizer, args: Any, *, decay: int | float, shape: str = "1-sqrt",
                  min_ratio: float = 0.0, num_training_steps: int | None = None, on_change: OnChange = "error",
                  **kw: Any) -> RiverbedLR:
    """``RiverbedLR`` over :func:`wsd_from_args` for ``optimizer`` (for ``Trainer(optimizers=...)``)."""
    schedule = wsd_from_args(args, decay=decay, shape=shape, min_ratio=min_ratio,
                             num_training_steps=num_training_steps, **kw)
    return RiverbedLR(optimizer, schedule, on_change=on_change)


def riverbed_optimizers(model: torch.nn.Module, args: Any, schedule: Schedule | dict[str, Any], *,
                        on_change: OnChange = "error") -> tuple[torch.optim.Optimizer, RiverbedLR]:
    """``(optimizer, scheduler)`` for ``Trainer(optimizers=...)`` with a riverbed ``schedule``.

    The optimizer is the one Trainer builds from ``args`` (its ``get_optimizer_cls_and_kwargs``),
    over :func:`decay_parameter_groups`; the LR of update ``s`` is
    ``args.learning_rate * schedule.multiplier(s)``. ``schedule`` is a riverbed schedule or spec dict.
    """
    cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    optimizer = cls(decay_parameter_groups(model, args.weight_decay), **kwargs)
    return optimizer, RiverbedLR(optimizer, schedule, on_change=on_change)


# ---- spike guard -------------------------------------------------------------------------------


class PMAGuardCallback(SnapshotGuard, TrainerCallback):
    """Loss-spike guard with automatic recovery for ``transformers.Trainer`` (see module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_logged = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._last_logged = state.global_step

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        self.scale_lr(state.global_step, optimizer)

    def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        # Put the scheduled LR back before the scheduler steps, whatever scheduler it is.
        self.restore_lr(optimizer)

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        if model is not None:
            self.maybe_snapshot(state.global_step, model, optimizer)

    def on_log(self, args, state, control, logs=None, model=None, optimizer=None, **kwargs):
        if not logs or "loss" not in logs or model is None:
            return
        # The logged loss averages the steps since the last log; their forward passes used the
        # weights after updates [last_logged, global_step - 1], so the spike's onset (in
        # "weights after c updates" units, like the snapshots) is last_logged.
        onset = self._last_logged
        self._last_logged = state.global_step
        reason = self.judge(onset, state.global_step, logs["loss"], logs.get("grad_norm"), model, optimizer)
        if reason is not None:
            control.should_training_stop = True


# ---- PMA monitor -------------------------------------------------------------------------------


class PMAMonitorCallback(TrainerCallback):
    """Add ``pma_eval_loss`` (the loss of the merge of the last N snapshots V steps apart) to each evaluation."""

    def __init__(self, cfg: PMAConfig) -> None:
        self.cfg = cfg
        self.snapshots = PMASnapshots(cfg)
        self.history: list[dict[str, Any]] = []
        self.trainer: Trainer | None = None
        self._warned = False

    def attach(self, trainer: Trainer) -> PMAMonitorCallback:
        """Log through ``trainer`` (its ``log``: log_history and every report_to callback), adding
        this callback to it if it is not there yet. Returns self."""
        if self not in trainer.callback_handler.callbacks:
            trainer.add_callback(self)
        self.trainer = trainer
        return self

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is not None:
            self.snapshots.on_step(state.global_step, model)

    def on_evaluate(self, args, state, control, metrics=None, model=None, eval_dataloader=None, **kwargs):
        if not self.snapshots.ready or model is None or eval_dataloader is None:
            return
        trained = {k: v.detach().clone() for k, v in model.state_dict().items()}
        was_training = model.training
        try:
            with torch.no_grad():
                model.load_state_dict(self.snapshots.merged_state())
                model.eval()
                loss = _mean_loss(model, eval_dataloader)
        finally:
            with torch.no_grad():
                model.load_state_dict(trained)
            model.train(was_training)
        row = {"kind": "pma", "step": state.global_step, METRIC: loss, "pma_count": self.cfg.count,
               "pma_every": self.cfg.every, "pma_unit": self.cfg.unit, "pma_method": self.cfg.method,
               "pma_positions": self.snapshots.positions}
        self.history.append(row)
        if metrics is not None:
            metrics[METRIC] = loss  # the dict Trainer.evaluate() returns
        if self.trainer is not None:
            self.trainer.log({METRIC: loss})  # log_history, and on_log of every report_to integration
            return
        state.log_history.append({METRIC: loss, "step": state.global_step})
        if not self._warned:
            self._warned = True
            warnings.warn("PMAMonitorCallback is not attached to its Trainer: pma_eval_loss goes to state.log_history "
                          "only, not to the report_to dashboards (call pma.attach(trainer))", UserWarning, stacklevel=2)


def _mean_loss(model: torch.nn.Module, loader: Any) -> float:
    """Per-example mean of the model's own loss (``labels`` in the batch) over ``loader``."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for batch in loader:
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        out = model(**batch)
        if getattr(out, "loss", None) is None:
            raise ConfigError("PMAMonitorCallback: the model returned no loss; the evaluation batches need labels")
        n = len(next(v for v in batch.values() if isinstance(v, torch.Tensor)))
        total += float(out.loss) * n
        count += n
    if count == 0:
        raise ConfigError("PMAMonitorCallback: the evaluation set is empty")
    return total / count
