"""PMA snapshots for other people's loops: the last N weights at multiples of V steps, and their merge.

The framework-neutral half of a PMA monitor (the Lightning callback in
:mod:`riverbed.integrations.lightning`): the same positions and merge weights as riverbed's own
:class:`~riverbed.merging.monitor.PMAMonitor` (``[pma]`` every = V, count = N, method), kept as
float32 host copies, so the merged model is the one ``riverbed merge --last N --every V`` would
build from checkpoints saved at multiples of V.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch

from riverbed.errors import ConfigError
from riverbed.merging.memory import merge_state_dicts
from riverbed.merging.monitor import PMAConfig


class PMASnapshots:
    """The newest ``cfg.count`` snapshots taken at multiples of ``cfg.every`` optimizer steps."""

    def __init__(self, cfg: PMAConfig) -> None:
        if cfg.unit != "steps":
            raise ConfigError(f"pma.unit={cfg.unit!r}: this loop counts optimizer steps; use unit = 'steps'")
        self.cfg = cfg
        self._items: deque[tuple[int, dict[str, torch.Tensor]]] = deque(maxlen=cfg.count)

    def on_step(self, step: int, model: torch.nn.Module) -> None:
        """After update ``step``: copy the weights if ``step`` is a multiple of V."""
        # a loop that went back (a restored spike) forgets the snapshots of the abandoned future
        while self._items and self._items[-1][0] >= step:
            self._items.pop()
        if step > 0 and step % self.cfg.every == 0:
            self._items.append((step, {k: v.detach().to("cpu", copy=True).float() for k, v in model.state_dict().items()}))

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
