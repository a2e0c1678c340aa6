"""The ``[pma]`` monitor in riverbed's step loop (riverbed.merging.monitor has the section and
the rows it logs): at every evaluation, the merge of the last N snapshots spaced V apart is
evaluated on the held-out split and logged as ``pma_eval_loss``.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Mapping
from typing import Any

import torch

from riverbed.checkpoints import layout
from riverbed.checkpoints.schema import read_state
from riverbed.checkpoints.state import read_safetensors
from riverbed.merging.memory import merge_state_dicts
from riverbed.merging.monitor import METRIC, PMAConfig
from riverbed.training.callbacks import Callback, TrainContext


class PMAMonitor(Callback):
    """Trainer callback: ``train_branch(..., callbacks=[PMAMonitor(cfg.pma)])``.

    >>> # PMAMonitor(PMAConfig(every=100, count=4)) logs "pma_eval_loss" at every evaluation
    """

    def __init__(self, cfg: PMAConfig, branch: str = "main") -> None:
        self.cfg = cfg
        self.branch = branch  # PMA merges the stable phase: other branches are left alone
        self.snapshots: deque[tuple[int, dict[str, Any]]] = deque(maxlen=cfg.count)
        self._last_bucket: int | None = None
        self._eval_model = None

    def _position(self, ctx: TrainContext) -> int:
        return int(ctx.step if self.cfg.unit == "steps" else ctx.tokens)

    def _active(self, ctx: TrainContext) -> bool:
        return ctx.branch == self.branch

    def _delta(self, ctx: TrainContext) -> int:
        """How far one optimizer step moves the position (1 step, or the tokens per step)."""
        return 1 if self.cfg.unit == "steps" else int(ctx.cfg.train.tokens_per_step)

    def _crosses(self, pos: int, delta: int) -> bool:
        # the first step at or past a multiple of V (for steps: exactly the multiples of V)
        return pos // self.cfg.every > (pos - delta) // self.cfg.every

    def _backfill(self, ctx: TrainContext, before: int) -> None:
        """On the first step of a process (fresh start or resume), the snapshots before it are
        the branch's checkpoints on disk at the positions the monitor would have copied."""
        delta = self._delta(ctx)
        picked = []
        for ref in layout.list_checkpoints(ctx.run_dir, ctx.branch):
            state = read_state(ref.path)
            pos = state.step if self.cfg.unit == "steps" else state.tokens
            if 0 < pos < before and self._crosses(pos, delta):
                picked.append((pos, ref.path))
        self.snapshots.clear()
        for pos, path in picked[-self.cfg.count :]:
            self.snapshots.append((pos, {k: v.float() for k, v in read_safetensors(path / layout.MODEL_FILE).items()}))
        self._last_bucket = (before - delta) // self.cfg.every

    def on_step_end(self, ctx: TrainContext) -> None:
        if not self._active(ctx):
            return
        pos = self._position(ctx)
        if self._last_bucket is None:
            self._backfill(ctx, before=pos)
        elif self.snapshots and pos <= self.snapshots[-1][0]:
            # the loop rewound (spike-guard rollback): forget snapshots from the abandoned future
            while self.snapshots and self.snapshots[-1][0] >= pos:
                self.snapshots.pop()
            self._last_bucket = (pos - self._delta(ctx)) // self.cfg.every
        bucket = pos // self.cfg.every
        if bucket > self._last_bucket:
            self._last_bucket = bucket
            self.snapshots.append((pos, _host_float32(ctx.model)))

    def merged_state(self) -> dict[str, Any]:
        """The float32 merge of the current snapshots (oldest first)."""
        states = [s for _, s in self.snapshots]
        return merge_state_dicts(states, self.cfg.weights(len(states)))

    def on_eval(self, ctx: TrainContext, metrics: Mapping[str, float]) -> None:
        if not self._active(ctx) or len(self.snapshots) < self.cfg.count:
            return  # the paper's merge needs N checkpoints spaced V apart
        if self._eval_model is None:
            self._eval_model = copy.deepcopy(ctx.model)
        self._eval_model.load_state_dict(self.merged_state())
        loss = float(ctx.evaluate(self._eval_model))
        ctx.log({
            "kind": "pma", "flops": ctx.flops, METRIC: loss, "pma_count": len(self.snapshots),
            "pma_every": self.cfg.every, "pma_unit": self.cfg.unit, "pma_method": self.cfg.method,
            "pma_positions": [p for p, _ in self.snapshots],
        })


def _host_float32(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).float() for k, v in model.state_dict().items()}
