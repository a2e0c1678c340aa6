"""Lightning integration: the spike guard (PMA-init / rollback) and a PMA monitor as ``lightning`` callbacks.

:class:`PMAGuardCallback` runs riverbed's
:class:`~riverbed.integrations.snapshot_guard.SnapshotGuard` (the same code as the Hugging Face
callback) on a ``lightning.Trainer``: it snapshots the module every ``every`` optimizer steps,
judges the loss of every optimizer step (and the weights' finiteness, and the gradient norm when
``grad_norm_ratio`` is set) and on a spike restores the merge of the last healthy snapshots
(``action = "pma-init"``) or the newest healthy one (``"rollback"``) into the module and the
optimizer. :class:`PMAMonitorCallback` evaluates the merge of the last N snapshots spaced V steps
apart at every validation and logs it as ``pma_eval_loss`` beside your own validation metric.
Example::

    import lightning as L
    from riverbed.integrations.lightning import PMAGuardCallback, PMAMonitorCallback
    from riverbed.merging.pma_snapshots import PMAConfig
    from riverbed.config.guard import GuardConfig

    guard = PMAGuardCallback(GuardConfig(action="pma-init", pma_count=3), every=100)
    pma = PMAMonitorCallback(PMAConfig(every=200, count=5), metric="val_loss")
    L.Trainer(max_steps=10_000, callbacks=[guard, pma]).fit(module, train_loader, val_loader)
    print(guard.events, pma.history)

The loss judged is the one ``training_step`` returns (a tensor or ``{"loss": ...}``), once per
optimizer step (with gradient accumulation: the last micro-batch's). The data loader is not
rewound after a recovery, so training continues with the next batches and the step counter (hence
any LR schedule) keeps going, as in the Hugging Face callback. Single device or DDP (the loss judged
is the mean over ranks, so every rank restores identically); not for sharded (FSDP / DeepSpeed)
parameters. ``pip install 'riverbed[lightning]'``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

try:
    import lightning.pytorch as pl
except ImportError as exc:  # pragma: no cover - exercised only without lightning
    raise ImportError("riverbed.integrations.lightning needs lightning: pip install 'riverbed[lightning]'") from exc

from riverbed.errors import ConfigError
from riverbed.integrations.snapshot_guard import SnapshotGuard
from riverbed.merging.pma_snapshots import METRIC, PMAConfig, PMASnapshots


def _loss_of(outputs: Any) -> float | None:
    value = outputs.get("loss") if isinstance(outputs, dict) else outputs
    if value is None:
        return None
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


class PMAGuardCallback(SnapshotGuard, pl.Callback):
    """Loss-spike guard with automatic recovery for ``lightning.Trainer`` (see module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._step_before = 0
        self._grad_norm: float | None = None
        self._hooks: list[Any] = []

    def on_train_start(self, trainer, pl_module):
        # Lightning has no callback hook between optimizer.step() and the scheduler's step:
        # torch's step post-hook is exactly there, so a scaled-down LR is put back in time.
        for opt in trainer.optimizers:
            self._hooks.append(opt.register_step_post_hook(lambda o, args, kwargs: self.restore_lr(o)))

    def on_train_end(self, trainer, pl_module):
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._step_before = trainer.global_step
        if trainer.optimizers:
            self.scale_lr(trainer.global_step, trainer.optimizers[0])

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if self.config.grad_norm_ratio > 0:
            grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
            self._grad_norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))\
                if grads else None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if step == self._step_before:
            return  # accumulating gradients: no update yet
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        self.maybe_snapshot(step, pl_module, optimizer)
        loss = _loss_of(outputs)
        if loss is None:
            return
        if trainer.world_size > 1:
            # every rank must reach the same verdict (and restore identically): judge the mean loss
            loss = float(trainer.strategy.reduce(torch.tensor(loss, device=pl_module.device), reduce_op="mean"))
        # the loss was computed with the weights after step_before updates: that is its onset
        reason = self.judge(self._step_before, step, loss, self._grad_norm, pl_module, optimizer)
        self._grad_norm = None
        if reason is not None:
            trainer.should_stop = True


class PMAMonitorCallback(pl.Callback):
    """Log ``pma_eval_loss``: the validation loss of the merge of the last N snapshots V steps apart.

    ``metric`` names what your ``validation_step`` logs (``self.log("val_loss", ...)``); the
    monitor runs ``validation_step`` over the validation loaders with the merged weights swapped
    in (your own logging silenced, the trained weights put back after), and averages that metric
    over the batches (or the returned loss, if nothing is logged under ``metric``). Pass
    ``evaluate=fn`` (``fn(module) -> float``, called with the merged weights loaded) to measure it
    yourself. ``history`` holds one row per evaluation, as riverbed's own monitor writes them.
    """

    def __init__(self, cfg: PMAConfig, *, metric: str = "val_loss",
                 evaluate: Callable[[pl.LightningModule], float] | None = None) -> None:
        self.cfg = cfg
        self.metric = metric
        self.evaluate = evaluate
        self.snapshots = PMASnapshots(cfg)
        self.history: list[dict[str, Any]] = []
        self._step_before = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._step_before = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step != self._step_before:
            self.snapshots.on_step(trainer.global_step, pl_module)

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or not self.snapshots.ready:
            return
        trained = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        try:
            with torch.no_grad():
                pl_module.load_state_dict(self.snapshots.merged_state())
            loss = float(self.evaluate(pl_module) if self.evaluate is not None else self._validate(trainer, pl_module))
        finally:
            with torch.no_grad():
                pl_module.load_state_dict(trained)
        pl_module.log(METRIC, loss, sync_dist=trainer.world_size > 1)  # each rank saw its own batches
        self.history.append({
            "kind": "pma", "step": trainer.global_step, METRIC: loss, "pma_count": self.cfg.count,
            "pma_every": self.cfg.every, "pma_unit": self.cfg.unit, "pma_method": self.cfg.method,
            "pma_positions": self.snapshots.positions,
        })

    def _validate(self, trainer, pl_module) -> float:
        loaders = trainer.val_dataloaders
        loaders = list(loaders) if isinstance(loaders, (list, tuple)) else [loaders]
        values: list[float] = []
        captured: list[float] = []

        def capture(name: str, value: Any, *args: Any, **kwargs: Any) -> None:
            if name == self.metric:
                captured.append(float(value))

        pl_module.log = capture  # the merged model's numbers must not land in the raw metrics
        try:
            with torch.no_grad():
                for idx, loader in enumerate(loaders):
                    for i, batch in enumerate(loader):
                        batch = trainer.strategy.batch_to_device(batch, dataloader_idx=idx)
                        before = len(captured)
                        extra = (idx,) if len(loaders) > 1 else ()
                        out = pl_module.validation_step(batch, i, *extra)
                        value = captured[-1] if len(captured) > before else _loss_of(out)
                        if value is None:
                            raise ConfigError(f"PMAMonitorCallback: validation_step neither logged {self.metric!r} "
                                              "nor returned a loss; pass metric= (the name you log) or evaluate=")
                        values.append(value)
        finally:
            del pl_module.log
        if not values:
            raise ConfigError("PMAMonitorCallback: no validation batches to evaluate the merge on")
        return sum(values) / len(values)
