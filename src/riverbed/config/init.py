"""``[init]``: the configuration of merged initialisation (PMA-init), beside
riverbed.training.merged_init, which builds the merged checkpoint. Light on purpose (no torch):
riverbed.config imports it to type the ``[init]`` section.

>>> InitConfig(from_merge="runs/base", last=3).every
1
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from riverbed.errors import ConfigError
from riverbed.config.guard import METHODS, OPTIMIZER_POLICIES


def _check(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r}: expected {expected}")


@dataclass(frozen=True)
class InitConfig:
    """``[init]``: start a new run from a merge of another run's checkpoints (PMA-init).

    Used for continued training on new data or fine-tuning; the optimizer moments follow
    ``optimizer_state`` exactly as after a guard recovery.
    """

    from_merge: str = ""
    """Path of the run whose checkpoints are merged."""
    branch: str = "main"
    """Branch of that run to take checkpoints from."""
    last: int = 3
    """N: how many checkpoints to merge (the newest ones, after ``every`` thinning)."""
    every: int = 1
    """Spacing V in steps: back from the newest, each checkpoint at least V steps before the
    previous pick (the same rule as ``riverbed merge --every``)."""
    method: Literal["sma", "ema", "wma"] = "sma"
    """Merge weights (see riverbed.merging)."""
    alpha: float = 0.2
    """EMA coefficient (method = "ema")."""
    optimizer_state: Literal["reset", "from-last", "average"] = "reset"
    """AdamW moments of the new run: fresh, the newest merged checkpoint's, or merged alike."""

    def __post_init__(self) -> None:
        _check(bool(self.from_merge), "init.from_merge", self.from_merge, "the path of a run")
        _check(bool(self.branch), "init.branch", self.branch, "a branch name")
        _check(self.last >= 1, "init.last", self.last, ">= 1")
        _check(self.every >= 1, "init.every", self.every, ">= 1")
        _check(self.method in METHODS, "init.method", self.method, " | ".join(METHODS))
        _check(0 < self.alpha <= 1, "init.alpha", self.alpha, "in (0, 1]")
        _check(self.optimizer_state in OPTIMIZER_POLICIES, "init.optimizer_state", self.optimizer_state,
               " | ".join(OPTIMIZER_POLICIES))
