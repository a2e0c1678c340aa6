"""``[guard]``: the configuration of the loss-spike guard (riverbed.training.spike_detector detects,
riverbed.training.spike_guard acts). Light on purpose (no torch): riverbed.config types the
``[guard]`` section with it.

>>> GuardConfig(window=20, min_history=5).action
'pma-init'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from riverbed.errors import ConfigError

ACTIONS = ("pma-init", "rollback", "skip", "stop")
OPTIMIZER_POLICIES = ("reset", "from-last", "average")
METHODS = ("sma", "ema", "wma")


def _check(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r}: expected {expected}")


@dataclass(frozen=True)
class GuardConfig:
    """``[guard]``: detect loss / gradient-norm spikes and NaNs during training, and recover.

    Presence of the section turns the guard on. A step is *anomalous* when its loss is
    non-finite, or when any configured detector trips against the trailing window of healthy
    steps; ``patience`` consecutive anomalous steps make a *spike* (non-finite values and
    non-finite weights are a spike at once).
    """

    window: int = 50
    """Trailing window of healthy steps the robust statistics (median, MAD) are computed over."""
    min_history: int = 10
    """Healthy steps needed before the loss / grad-norm detectors arm (NaN is always caught)."""
    detectors: tuple[Literal["mad", "ratio"], ...] = ("mad",)
    """Loss detectors, any of which trips: "mad" = loss > median + max(mad_k * MAD, mad_floor *
    |median|); "ratio" = loss > ratio * median."""
    mad_k: float = 8.0
    """How many median absolute deviations above the rolling median count as a spike."""
    mad_floor: float = 0.05
    """Minimum relative rise for "mad" (guards a near-constant window whose MAD is ~0)."""
    ratio: float = 1.5
    """Threshold of the "ratio" detector (loss / rolling median)."""
    grad_norm_ratio: float = 0.0
    """Gradient-norm spike: grad_norm > grad_norm_ratio * rolling median grad norm; 0 = off."""
    patience: int = 1
    """Consecutive anomalous steps before the guard acts (1 = act on the first one)."""
    check_weights: bool = True
    """Also treat non-finite weights as a spike (checked every step; cheap next to a step)."""
    action: Literal["pma-init", "rollback", "skip", "stop"] = "pma-init"
    """pma-init = merge the last pma_count healthy checkpoints and resume from the merge;
    rollback = resume from the last healthy checkpoint; skip = rollback and also skip the data
    between that checkpoint and the spike; stop = end the branch with an error."""
    pma_count: int = 3
    """N: healthy checkpoints merged by pma-init (the paper used 3 for its spiking MoE)."""
    pma_method: Literal["sma", "ema", "wma"] = "sma"
    """Merge weights: sma = 1/N (the paper's choice for PMA-init), ema recursion, wma ∝ i."""
    alpha: float = 0.2
    """EMA coefficient (pma_method = "ema")."""
    optimizer_state: Literal["reset", "from-last", "average"] = "reset"
    """AdamW moments after a recovery (the paper does not say): reset = fresh moments;
    from-last = the newest restored checkpoint's; average = the merge weights applied to them."""
    lr_scale: float = 1.0
    """Multiply the LR by this for lr_scale_steps steps after a recovery (1 = unchanged)."""
    lr_scale_steps: int = 0
    """How many steps the LR scale-down lasts after a recovery."""
    max_recoveries: int = 3
    """Recoveries allowed per branch; one more spike stops the branch with a clear error."""
    on_insufficient: Literal["use-available", "error"] = "use-available"
    """Fewer than pma_count healthy checkpoints: merge those there are (logged) or stop."""
    healthy_margin: int = 0
    """A checkpoint is healthy only if saved at least this many steps before the spike's onset."""
    skip_steps: int = 0
    """action = skip: data steps skipped; 0 = the whole window from the restored checkpoint
    to the spike step."""

    def __post_init__(self) -> None:
        for key in ("window", "min_history", "patience", "pma_count"):
            _check(getattr(self, key) >= 1, f"guard.{key}", getattr(self, key), ">= 1")
        _check(self.min_history <= self.window, "guard.min_history", self.min_history,
               f"<= guard.window={self.window}")
        for key in ("lr_scale_steps", "max_recoveries", "healthy_margin", "skip_steps"):
            _check(getattr(self, key) >= 0, f"guard.{key}", getattr(self, key), ">= 0")
        _check(len(self.detectors) >= 1 and all(d in ("mad", "ratio") for d in self.detectors)
               and len(set(self.detectors)) == len(self.detectors),
               "guard.detectors", list(self.detectors), 'a non-empty list of "mad", "ratio"')
        _check(math.isfinite(self.mad_k) and self.mad_k > 0, "guard.mad_k", self.mad_k, "a positive number")
        _check(math.isfinite(self.mad_floor) and self.mad_floor >= 0, "guard.mad_floor", self.mad_floor, ">= 0")
        _check(math.isfinite(self.ratio) and self.ratio > 1, "guard.ratio", self.ratio,
               "> 1 (a loss at or below the median is no spike)")
        _check(math.isfinite(self.grad_norm_ratio) and (self.grad_norm_ratio == 0 or self.grad_norm_ratio > 1),
               "guard.grad_norm_ratio", self.grad_norm_ratio, "0 (off) or > 1")
        _check(self.action in ACTIONS, "guard.action", self.action, " | ".join(ACTIONS))
        _check(self.pma_method in METHODS, "guard.pma_method", self.pma_method, " | ".join(METHODS))
        _check(0 < self.alpha <= 1, "guard.alpha", self.alpha, "in (0, 1]")
        _check(self.optimizer_state in OPTIMIZER_POLICIES, "guard.optimizer_state", self.optimizer_state,
               " | ".join(OPTIMIZER_POLICIES))
        _check(math.isfinite(self.lr_scale) and 0 < self.lr_scale <= 1, "guard.lr_scale", self.lr_scale, "in (0, 1]")
        _check(self.on_insufficient in ("use-available", "error"), "guard.on_insufficient", self.on_insufficient,
               "use-available | error")
