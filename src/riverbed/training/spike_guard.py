"""The spike guard in riverbed's step loop: detect (``SpikeDetector``), then act.

``riverbed.training.setup.callbacks_from_config`` adds a :class:`SpikeGuard` when the config
has a ``[guard]`` section; it can also be passed explicitly in ``callbacks``. At the end of every step it judges the step's loss,
gradient norm and weights; on a spike it

* ``pma-init``: merges the last ``pma_count`` healthy checkpoints of the branch (saved before
  the spike's onset, finite weights) and resumes from the merge at the newest merged step;
* ``rollback``: resumes from the newest healthy checkpoint;
* ``skip``: rolls back and moves the data position past the batches that led to the spike
  (``ctx.data_offset``), the PaLM recipe;
* ``stop``: raises RunError.

The optimizer state follows ``optimizer_state``; ``lr_scale`` multiplies the LR for
``lr_scale_steps`` steps. Checkpoints newer than the restore point hold spiking weights: they
are moved to ``branches/<b>/quarantine/recovery_<k>/`` so neither a resume nor a later merge
picks them up. Every detection, rejection, fallback and recovery is a self-describing event in
the run tree (``riverbed ls``) and in metrics.jsonl. After ``max_recoveries`` recoveries the
next spike ends the branch with a RunError.

>>> from riverbed.config.guard import GuardConfig
>>> guard = SpikeGuard(GuardConfig(action="rollback"))
>>> train_branch(cfg, "runs/x", callbacks=[guard], until_step=1000)    # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any, NoReturn

from riverbed.checkpoints import layout
from riverbed.config.guard import GuardConfig
from riverbed.errors import RiverbedError, RunError
from riverbed.runs.run import Run
from riverbed.training import distributed as D
from riverbed.training.callbacks import Callback, TrainContext
from riverbed.training.recovery import merge_checkpoints, pick_checkpoints, weights_finite
from riverbed.training.spike_detector import SpikeDetector, Verdict


class SpikeGuard(Callback):
    """Loss-spike detection and automatic recovery for :func:`riverbed.training.train_branch`."""

    def __init__(self, config: GuardConfig | None = None, *, record: bool = True) -> None:
        self.config = config or GuardConfig()
        self.record = record
        self.detector = SpikeDetector(self.config)
        self.recoveries = 0
        self.events: list[dict[str, Any]] = []
        self._scale_until: int | None = None
        self._scale_prev = 1.0

    # ---- persistence: a resumed branch continues with the guard's memory -------------------
    def state_dict(self) -> dict[str, Any]:
        return {"detector": self.detector.state_dict(), "recoveries": self.recoveries,
                "scale_until": self._scale_until, "scale_prev": self._scale_prev}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.detector.load_state_dict(state.get("detector", {}))
        self.recoveries = int(state.get("recoveries", 0))
        self._scale_until = state.get("scale_until")
        self._scale_prev = float(state.get("scale_prev", 1.0))

    def load_checkpoint_files(self, ctx: TrainContext, files: Mapping[str, Any]) -> None:
        # the mirror of checkpoint_files: the state saved in the checkpoint this branch resumes from
        if layout.GUARD_FILE in files:
            self.load_state_dict(files[layout.GUARD_FILE])
            self.detector.rewind(ctx.step)

    def checkpoint_files(self, ctx: TrainContext) -> dict[str, Any]:
        # inside the checkpoint before it is visible: a resume never sees weights without it
        return {layout.GUARD_FILE: self.state_dict()}

    # ---- the per-step check ---------------------------------------------------------------
    def on_step_end(self, ctx: TrainContext) -> None:
        if self._scale_until is not None and ctx.step >= self._scale_until:
            ctx.lr_scale = self._scale_prev
            self._event(ctx, {"event": "lr-scale-end", "step": ctx.step, "lr_scale": ctx.lr_scale})
            self._scale_until = None
        # The loss of step s = ctx.step - 1 was computed with the weights after s updates; the
        # checkpoint step_c holds the weights after c updates, so c < onset is pre-spike.
        s = ctx.step - 1
        finite = weights_finite(ctx.model) if self.config.check_weights else True
        loss = ctx.train_loss
        verdict = self.detector.update(s, float("nan") if loss is None else loss, ctx.grad_norm, weights_finite=finite)
        if verdict.spike:
            self._on_spike(ctx, verdict)

    def _on_spike(self, ctx: TrainContext, verdict: Verdict) -> None:
        cfg = self.config
        self._event(ctx, {**verdict.to_event(), "action": cfg.action})
        if cfg.action == "stop":
            self._fail(ctx, f"spike guard: {verdict.reason} (guard.action = stop)")
        if self.recoveries >= cfg.max_recoveries:
            self._fail(ctx, f"spike guard: {verdict.reason} after {self.recoveries} recoveries "
                            f"(guard.max_recoveries={cfg.max_recoveries}): the run keeps spiking; stopping. "
                            f"Lower the LR or raise guard.max_recoveries.")
        onset = verdict.onset if verdict.onset is not None else verdict.step
        count = cfg.pma_count if cfg.action == "pma-init" else 1
        refs = layout.list_checkpoints(ctx.run_dir, ctx.branch)
        picked, weights, rejected = pick_checkpoints(refs, count=count, onset=onset, margin=cfg.healthy_margin)
        for r in rejected:
            self._event(ctx, {"event": "checkpoint-rejected", **r})
        if not picked:
            self._fail(ctx, f"spike guard: {verdict.reason}, but no healthy checkpoint of branch {ctx.branch!r} "
                            f"was saved before step {onset - cfg.healthy_margin} (checkpoints: "
                            f"{[r.step for r in refs]}); save checkpoints more often (train.ckpt_every)")
        if len(picked) < count:
            msg = (f"only {len(picked)} healthy checkpoint(s) before step {onset} for guard.pma_count={count}: "
                   f"{[r.step for r in picked]}")
            if cfg.on_insufficient == "error":
                self._fail(ctx, f"spike guard: {msg} (guard.on_insufficient = error)")
            self._event(ctx, {"event": "fallback", "reason": f"{msg}; merging those (guard.on_insufficient = use-available)"})
        method = cfg.pma_method if cfg.action == "pma-init" else "sma"
        try:
            merged = merge_checkpoints(picked, weights, method=method, alpha=cfg.alpha,
                                       optimizer_state=cfg.optimizer_state, rejected=rejected)
        except RiverbedError as exc:
            self._fail(ctx, f"spike guard: recovery from {[r.step for r in picked]} failed: {exc}")
        target = merged.steps[-1]
        skip = 0
        if cfg.action == "skip":
            # the batches of steps target .. s (those the spiking trajectory trained on)
            skip = cfg.skip_steps or (verdict.step - target + 1)
        self.recoveries += 1
        self._quarantine(ctx, target)
        scale = cfg.lr_scale < 1 and cfg.lr_scale_steps > 0
        if scale:
            self._scale_prev = ctx.lr_scale if self._scale_until is None else self._scale_prev
            self._scale_until = target + cfg.lr_scale_steps
        ctx.restore(merged.model, merged.optimizer, reset_optimizer=merged.optimizer is None,
                    lr_scale=self._scale_prev * cfg.lr_scale if scale else None, step=target,
                    reason=f"spike guard {cfg.action} from {merged.steps}")
        ctx.data_offset += skip
        self.detector.rewind(target)
        self._event(ctx, {"event": "recovery", "action": cfg.action, "step": ctx.step, "resume_step": target,
                          **merged.describe(), "optimizer_state": cfg.optimizer_state,
                          "lr_scale": cfg.lr_scale if scale else 1.0, "lr_scale_steps": cfg.lr_scale_steps if scale else 0,
                          "data_skipped": skip, "data_offset": ctx.data_offset,
                          "recovery": self.recoveries, "max_recoveries": cfg.max_recoveries})

    # ---- helpers ---------------------------------------------------------------------------
    def _quarantine(self, ctx: TrainContext, target: int) -> None:
        """Move the branch's checkpoints newer than ``target`` aside (they hold spiking weights)."""
        D.barrier(ctx.dist)  # every rank has read what it needs before rank 0 moves files
        if not ctx.is_main:
            return
        newer = [r for r in layout.list_checkpoints(ctx.run_dir, ctx.branch) if r.step > target]
        if not newer:
            return
        dest = layout.quarantine_dir(ctx.run_dir, ctx.branch, self.recoveries)
        dest.mkdir(parents=True, exist_ok=True)
        for r in newer:
            os.replace(r.path, dest / r.path.name)
        self._event(ctx, {"event": "quarantine", "steps": [r.step for r in newer], "to": str(dest)})

    def _fail(self, ctx: TrainContext, reason: str) -> NoReturn:
        self._event(ctx, {"event": "stop", "step": ctx.step, "reason": reason})
        raise RunError(reason)

    def _event(self, ctx: TrainContext, event: dict[str, Any]) -> None:
        event = {k: (repr(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in event.items()}
        self.events.append(event)
        ctx.log({"kind": "event", "source": "guard", **{k: v for k, v in event.items() if k != "step"}})
        if self.record and ctx.is_main and (ctx.run_dir / layout.MANIFEST).is_file():
            try:
                Run(ctx.run_dir).record_event(ctx.branch, {"source": "guard", **event})
            except RunError:  # a bare train_branch call without a branch record: metrics.jsonl has it
                pass
