"""Loss-spike guard: the pure spike detector (its ``[guard]`` section is riverbed.config.guard).

The PMA paper (arXiv 2505.12082, section "PMA-init") restarts a run that spiked irrecoverably
from the average of the last few healthy checkpoints. Detecting the spike is a pure function of
the loss / gradient-norm history, so it lives here with no torch dependency; acting on it (merge,
load, resume) lives in :mod:`riverbed.training.spike_guard` (and the HF callback).

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
from typing import Any

from riverbed.config.guard import GuardConfig


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
