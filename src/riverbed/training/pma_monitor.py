"""The ``[pma]`` monitor in riverbed's step loop (riverbed.merging.pma_snapshots has the section and
the rows it logs): at every evaluation, the merge of the last N snapshots spaced V apart is
evaluated on the held-out split and logged as ``pma_eval_loss``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch

from riverbed.checkpoints import layout
from riverbed.checkpoints.schema import read_state
from riverbed.checkpoints.state import read_safetensors
from riverbed.merging.pma_snapshots import METRIC, PMAConfig, PMASnapshots
from riverbed.training.callbacks import Callback, TrainContext


class PMAMonitor(Callback):
    """Trainer callback: ``train_branch(..., callbacks=[PMAMonitor(cfg.pma)])``.

    The snapshots follow :class:`~riverbed.merging.pma_snapshots.PMASnapshots` (the rule the HF and
    Lightning callbacks use too); after a start or a resume they are refilled from the branch's
    checkpoints on disk at the positions the monitor would have copied.

    >>> # PMAMonitor(PMAConfig(every=100, count=4)) logs "pma_eval_loss" at every evaluation
    """

    def __init__(self, cfg: PMAConfig, branch: str = "main") -> None:
        self.cfg = cfg
        self.branch = branch  # PMA merges the stable phase: other branches are left alone
        self.snapshots = PMASnapshots(cfg, steps_only=False)
        self._started = False
        self._eval_model: torch.nn.Module | None = None

    def _position(self, ctx: TrainContext) -> int:
        return int(ctx.step if self.cfg.unit == "steps" else ctx.tokens)

    def _delta(self, ctx: TrainContext) -> int:
        """How far one optimizer step moves the position (1 step, or the tokens per step)."""
        return 1 if self.cfg.unit == "steps" else int(ctx.cfg.train.tokens_per_step)

    def _backfill(self, ctx: TrainContext, before: int) -> None:
        """The snapshots before this process's first step: checkpoints on disk at crossings of V."""
        delta = self._delta(ctx)
        picked = []
        for ref in layout.list_checkpoints(ctx.run_dir, ctx.branch):
            state = read_state(ref.path)
            pos = state.step if self.cfg.unit == "steps" else state.tokens
            if pos < before and self.snapshots.crosses(pos, delta):
                picked.append((pos, ref.path))
        self.snapshots.clear()
        for pos, path in picked[-self.cfg.count:]:
            self.snapshots.add(pos, {k: v.float() for k, v in read_safetensors(path / layout.MODEL_FILE).items()})

    def on_step_end(self, ctx: TrainContext) -> None:
        if ctx.branch != self.branch:
            return
        pos = self._position(ctx)
        if not self._started:
            self._started = True
            self._backfill(ctx, before=pos)
        self.snapshots.on_step(pos, ctx.model, self._delta(ctx))

    def merged_state(self) -> dict[str, Any]:
        """The float32 merge of the current snapshots (oldest first)."""
        return self.snapshots.merged_state()

    def on_eval(self, ctx: TrainContext, metrics: Mapping[str, float]) -> None:
        if ctx.branch != self.branch or not self.snapshots.ready:
            return  # the paper's merge needs N checkpoints spaced V apart
        if self._eval_model is None:
            self._eval_model = copy.deepcopy(ctx.model)
        self._eval_model.load_state_dict(self.merged_state())
        loss = float(ctx.evaluate(self._eval_model))
        ctx.log({
            "kind": "pma", "flops": ctx.flops, METRIC: loss, "pma_count": len(self.snapshots.positions),
            "pma_every": self.cfg.every, "pma_unit": self.cfg.unit, "pma_method": self.cfg.method,
            "pma_positions": self.snapshots.positions,
        })
