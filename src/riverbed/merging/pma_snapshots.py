"""PMA as a training monitor: the ``[pma]`` config section (torch-free; the trainer callback is
:class:`riverbed.training.pma_monitor.PMAMonitor`, the integrations' in ``riverbed.integrations``).

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

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from riverbed.errors import ConfigError
from riverbed.merging.memory import merge_state_dicts
from riverbed.merging.weights import weights_for

if TYPE_CHECKING:  # torch stays out of this module's imports: riverbed.config reads [pma] from it
    import torch

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
        return weights_for(self.method, n, alpha=self.alpha, ema_form=self.ema_form)


class PMASnapshots:
    """The newest ``cfg.count`` weight snapshots at multiples of V, and their merge: the one
    snapshot rule of the ``[pma]`` monitor (riverbed.training.pma_monitor) and of the HF /
    Lightning callbacks (riverbed.integrations). A snapshot is taken at the first position at or
    past each multiple of V (for steps: exactly the multiples), as float32 host copies; a loop
    that goes back (a spike-guard rollback) forgets the snapshots of the abandoned future.
    ``steps_only``: a loop that counts only optimizer steps (other people's trainers).
    """

    def __init__(self, cfg: PMAConfig, *, steps_only: bool = True) -> None:
        if steps_only and cfg.unit != "steps":
            raise ConfigError(f"pma.unit={cfg.unit!r}: this loop counts optimizer steps; use unit = 'steps'")
        self.cfg = cfg
        self._items: deque[tuple[int, dict[str, Any]]] = deque(maxlen=cfg.count)

    def crosses(self, pos: int, delta: int = 1) -> bool:
        """Is ``pos`` (reached by a move of ``delta``) the first position at or past a multiple of V?"""
        return pos > 0 and pos // self.cfg.every > (pos - delta) // self.cfg.every

    def on_step(self, pos: int, model: torch.nn.Module, delta: int = 1) -> None:
        """After the update that reached position ``pos``: copy the weights if it crosses a multiple of V."""
        while self._items and self._items[-1][0] >= pos:
            self._items.pop()
        if self.crosses(pos, delta):
            self.add(pos, {k: v.detach().to("cpu", copy=True).float() for k, v in model.state_dict().items()})

    def add(self, pos: int, state: dict[str, Any]) -> None:
        """Keep ``state`` (float32) as the snapshot at ``pos`` (the newest N are kept)."""
        self._items.append((pos, state))

    def clear(self) -> None:
        self._items.clear()

    @property
    def positions(self) -> list[int]:
        return [p for p, _ in self._items]

    @property
    def ready(self) -> bool:
        """The paper's merge needs N checkpoints spaced V apart."""
        return len(self._items) == self.cfg.count

    def merged_state(self) -> dict[str, Any]:
        """The float32 merge of the snapshots (oldest first) with the configured weights."""
        states = [s for _, s in self._items]
        return merge_state_dicts(states, self.cfg.weights(len(states)))
