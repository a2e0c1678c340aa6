"""Loss-spike guard: the ``[guard]`` and ``[init]`` config sections and the pure spike detector.

The PMA paper (arXiv 2505.12082, section "PMA-init") restarts a run that spiked irrecoverably
from the average of the last few healthy checkpoints. Detecting the spike is a pure function of
the loss / gradient-norm history, so it lives here with no torch dependency; acting on it (merge,
load, resume) lives in :mod:`riverbed.training.guard_callback` (and the HF callback).

Example::

    >>> det = SpikeDetector(GuardConfig(window=20, min_history=5))
    >>> for step in range(20):
    ...     _ = det.update(step, 3.0 - 0.01 * step + 0.01 * (-1) ** step)
    >>> det.update(20, 9.0).kind
    'loss-mad'
    >>> det.update(21, float("nan")).kind
    'nan-loss'
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import asdict, dataclass
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


@dataclass(frozen=True)
class Verdict:
    """The detector's answer for one step. ``spike`` = act now; ``anomalous`` = outside the band."""

    step: int
    spike: bool
    anomalous: bool
    kind: str | None = None
    """nan-loss | nan-weights | loss-mad | loss-ratio | grad-norm (None when healthy)."""
    reason: str = ""
    value: float | None = None
    threshold: float | None = None
    onset: int | None = None
    """First step of the run of consecutive anomalous steps that made the spike."""

    def to_event(self) -> dict[str, Any]:
        """A self-describing JSON dict for the run tree's event log."""
        d = {"event": "spike", **asdict(self)}
        d.pop("spike")
        d.pop("anomalous")
        # JSON has no NaN/inf: write them as the strings "nan" / "inf".
        return {k: (repr(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


class SpikeDetector:
    """Robust spike detection over a trailing window of *healthy* steps.

    Anomalous values never enter the window (a spike must not raise its own threshold).
    After a recovery, :meth:`rewind` drops the history at and after the restored step.
    """

    def __init__(self, config: GuardConfig | None = None) -> None:
        self.config = config or GuardConfig()
        self._losses: deque[tuple[int, float]] = deque(maxlen=self.config.window)
        self._norms: deque[tuple[int, float]] = deque(maxlen=self.config.window)
        self._run: list[int] = []  # steps of the current run of anomalous steps

    # ---- thresholds ------------------------------------------------------------------------
    def loss_threshold(self) -> tuple[float, str] | None:
        """The lowest loss that counts as anomalous now (and the detector), or None if unarmed."""
        if len(self._losses) < self.config.min_history:
            return None
        values = [v for _, v in self._losses]
        med = statistics.median(values)
        best: tuple[float, str] | None = None
        for name in self.config.detectors:
            if name == "mad":
                mad = statistics.median(abs(v - med) for v in values)
                t = med + max(self.config.mad_k * mad, self.config.mad_floor * abs(med))
            elif med > 0:  # a ratio means nothing for a non-positive loss
                t = self.config.ratio * med
            else:
                continue
            if best is None or t < best[0]:
                best = (t, f"loss-{name}")
        return best

    def grad_norm_threshold(self) -> float | None:
        if not self.config.grad_norm_ratio or len(self._norms) < self.config.min_history:
            return None
        return self.config.grad_norm_ratio * statistics.median(v for _, v in self._norms)

    # ---- feeding ---------------------------------------------------------------------------
    def update(self, step: int, loss: float, grad_norm: float | None = None,
               weights_finite: bool = True) -> Verdict:
        """Judge one step's loss (and grad norm); healthy values join the window."""
        loss = float(loss)
        kind, value, threshold = None, loss, None
        if not math.isfinite(loss):
            kind, reason = "nan-loss", f"loss is {loss} at step {step}"
        elif not weights_finite:
            kind, reason = "nan-weights", f"weights contain NaN/inf after step {step}"
        elif grad_norm is not None and not math.isfinite(grad_norm):
            kind, reason, value = "nan-loss", f"gradient norm is {grad_norm} at step {step}", float(grad_norm)
        else:
            lt = self.loss_threshold()
            gt = self.grad_norm_threshold() if grad_norm is not None else None
            if lt is not None and loss > lt[0]:
                kind, threshold = lt[1], lt[0]
                reason = f"loss {loss:.4g} > {threshold:.4g} ({kind}) at step {step}"
            elif gt is not None and grad_norm is not None and grad_norm > gt:
                kind, value, threshold = "grad-norm", float(grad_norm), gt
                reason = f"gradient norm {grad_norm:.4g} > {gt:.4g} at step {step}"
            else:
                reason = ""
        if kind is None:
            self._run.clear()
            self._losses.append((step, loss))
            if grad_norm is not None:
                self._norms.append((step, float(grad_norm)))
            return Verdict(step, spike=False, anomalous=False)
        self._run.append(step)
        immediate = kind in ("nan-loss", "nan-weights")
        spike = immediate or len(self._run) >= self.config.patience
        if spike and len(self._run) > 1:
            reason += f" ({len(self._run)} anomalous steps since {self._run[0]})"
        return Verdict(step, spike=spike, anomalous=True, kind=kind, reason=reason, value=value,
                       threshold=threshold, onset=self._run[0])

    def rewind(self, step: int) -> None:
        """Forget everything at or after ``step`` (the run resumes from a checkpoint at ``step``)."""
        for q in (self._losses, self._norms):
            kept = [(s, v) for s, v in q if s < step]
            q.clear()
            q.extend(kept)
        self._run.clear()

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state, so that resuming a run is the same as not stopping."""
        return {"losses": [list(x) for x in self._losses], "grad_norms": [list(x) for x in self._norms],
                "run": list(self._run)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._losses.clear()
        self._losses.extend((int(s), float(v)) for s, v in state.get("losses", []))
        self._norms.clear()
        self._norms.extend((int(s), float(v)) for s, v in state.get("grad_norms", []))
        self._run = [int(s) for s in state.get("run", [])]
