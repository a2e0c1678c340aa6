"""PMA as a training monitor: the ``[pma]`` config section and a trainer callback.

At every evaluation the monitor merges the last N main-branch weights spaced V apart (the PMA
paper's count N and interval V, arXiv 2505.12082), evaluates the merge on the held-out split and
logs it as its own curve, ``pma_eval_loss``, beside the raw branch's ``eval_loss``: it shows how
close a merge comes to a decayed model without paying for a decay.

The monitor keeps its own snapshots: each time the branch crosses a multiple of V (steps or
tokens) it copies the weights to float32 host memory (N copies at most), exactly the
checkpoints a merge with ``riverbed merge --run RUN --last N --every V`` would use when
checkpoints are saved at multiples of V. After a resume, it refills them from the checkpoints
on disk at multiples of V. The merged state stays float32 (a bf16 running merge stops moving
once the updates fall below bf16's resolution).

Rows logged to metrics.jsonl::

    {"kind": "pma", "step", "tokens", "flops", "pma_eval_loss", "pma_count", "pma_every",
     "pma_unit", "pma_method", "pma_positions": [...]}

Config (TOML)::

    [pma]
    every = 200      # V
    count = 5        # N
    method = "sma"   # sma | ema | wma
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from riverbed.errors import ConfigError

METHODS = ("sma", "ema", "wma")
UNITS = ("steps", "tokens")
METRIC = "pma_eval_loss"


@dataclass(frozen=True)
class PMAConfig:
    """``[pma]``: evaluate the merge of the last ``count`` checkpoints spaced ``every`` apart."""

    every: int
    """V: the merge interval between merged checkpoints, in ``unit`` (the paper's V)."""
    count: int = 10
    """N: how many checkpoints are merged (the paper's default is 10)."""
    method: str = "sma"
    """sma (equal weights, the paper's default), ema (uses ``alpha``) or wma (w_i ~ i)."""
    alpha: float = 0.2
    """EMA alpha (ema only; the paper tested 0.1 and 0.2)."""
    ema_form: str = "recursive"
    """EMA weights: "recursive" (the paper's recursion from the oldest) or "normalized"."""
    unit: str = "steps"
    """Unit of ``every``: "steps" or "tokens"."""

    def __post_init__(self) -> None:
        if not isinstance(self.every, int) or isinstance(self.every, bool) or self.every < 1:
            raise ConfigError(f"pma.every={self.every!r}: expected a positive integer (the merge interval V)")
        if not isinstance(self.count, int) or isinstance(self.count, bool) or self.count < 1:
            raise ConfigError(f"pma.count={self.count!r}: expected a positive integer (the number N of checkpoints)")
        if self.method not in METHODS:
            raise ConfigError(f"pma.method={self.method!r}: expected one of {', '.join(METHODS)}")
        if not isinstance(self.alpha, (int, float)) or not 0.0 < float(self.alpha) <= 1.0:
            raise ConfigError(f"pma.alpha={self.alpha!r}: expected a number in (0, 1]")
        if self.ema_form not in ("recursive", "normalized"):
            raise ConfigError(f"pma.ema_form={self.ema_form!r}: expected recursive or normalized")
        if self.unit not in UNITS:
            raise ConfigError(f"pma.unit={self.unit!r}: expected steps or tokens")

    def weights(self, n: int) -> tuple[float, ...]:
        from riverbed.merging.weights import weights_for

        return weights_for(self.method, n, alpha=self.alpha, ema_form=self.ema_form)


class PMAMonitor:
    """Trainer callback: ``train_branch(..., callbacks=[PMAMonitor(cfg.pma)])``.

    >>> # PMAMonitor(PMAConfig(every=100, count=4)) logs "pma_eval_loss" at every evaluation
    """

    is_pma_monitor = True

    def __init__(self, cfg: PMAConfig, branch: str = "main") -> None:
        self.cfg = cfg
        self.branch = branch  # PMA merges the stable phase: other branches are left alone
        self.snapshots: deque[tuple[int, dict[str, Any]]] = deque(maxlen=cfg.count)
        self._last_bucket: int | None = None
        self._eval_model = None

    def _position(self, ctx: Any) -> int:
        return int(ctx.step if self.cfg.unit == "steps" else ctx.tokens)

    def _active(self, ctx: Any) -> bool:
        return ctx.branch == self.branch

    def _delta(self, ctx: Any) -> int:
        """How far one optimizer step moves the position (1 step, or the tokens per step)."""
        return 1 if self.cfg.unit == "steps" else int(ctx.cfg.train.tokens_per_step)

    def _crosses(self, pos: int, delta: int) -> bool:
        # the first step at or past a multiple of V (for steps: exactly the multiples of V)
        return pos // self.cfg.every > (pos - delta) // self.cfg.every

    def _backfill(self, ctx: Any, before: int) -> None:
        """On the first step of a process (fresh start or resume), the snapshots before it are
        the branch's checkpoints on disk at the positions the monitor would have copied."""
        import json

        from riverbed.checkpoints import layout
        from riverbed.checkpoints.state import read_safetensors

        delta = self._delta(ctx)
        picked = []
        for ref in layout.list_checkpoints(ctx.run_dir, ctx.branch):
            state = json.loads((ref.path / layout.STATE_FILE).read_text(encoding="utf-8"))
            pos = int(state["step"] if self.cfg.unit == "steps" else state["tokens"])
            if 0 < pos < before and self._crosses(pos, delta):
                picked.append((pos, ref.path))
        self.snapshots.clear()
        for pos, path in picked[-self.cfg.count :]:
            self.snapshots.append((pos, {k: v.float() for k, v in read_safetensors(path / layout.MODEL_FILE).items()}))
        self._last_bucket = (before - delta) // self.cfg.every

    def on_step_end(self, ctx: Any) -> None:
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
        from riverbed.merging.memory import merge_state_dicts

        states = [s for _, s in self.snapshots]
        return merge_state_dicts(states, self.cfg.weights(len(states)))

    def on_eval(self, ctx: Any, metrics: Mapping[str, float]) -> None:
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

    def on_checkpoint(self, ctx: Any, ref: Any) -> None:
        pass


def _host_float32(model: Any) -> dict[str, Any]:
    return {k: v.detach().to("cpu", copy=True).float() for k, v in model.state_dict().items()}
