"""Loss curves with their full LR sequence: what the laws are fitted on and predict.

A :class:`Curve` holds the per-update LRs ``lr[0..N-1]`` (update ``i`` used ``lr[i]``), the warmup
length, and the eval points: ``steps`` (the model after that many updates) with their ``loss``
(NaN where unknown, for a curve to predict). Curves come from a user's CSV logs
(:func:`read_curve_csv`), from a riverbed schedule (:func:`curve_from_schedule`) or from a run
tree (:mod:`riverbed.predict.runs`).

CSV format: a header with ``step`` and ``lr`` (and ``loss`` to fit or to score), one row per
logged step at any interval. The LR between rows is interpolated linearly; the steps before the
first row are a linear warmup from 0 to the first row's LR, unless ``warmup_steps`` (a linear
warmup over that many steps, then the first row's LR held) or ``schedule`` (a riverbed
schedule spec times ``peak_lr``, used for every step before the first row) says otherwise.

>>> import numpy as np
>>> c = curve_from_rows("x", [10, 20], [1.0, 0.5], [3.0, 2.9])
>>> c.lr.size, c.lr[[0, 9, 10, 15, 20]].tolist()
(21, [0.1, 1.0, 1.0, 0.75, 0.5])
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from riverbed.io.input_files import read_text
from riverbed.errors import ConfigError, RiverbedError
from riverbed.schedules import Schedule, schedule_from_spec


class PredictError(RiverbedError, ValueError):
    """Trajectory-predictor input is unusable. The message names the file, branch, step or key."""


@dataclass(frozen=True)
class Curve:
    """One loss curve: the LR of every update and the eval points along it."""

    name: str
    lr: np.ndarray
    """LR of update i, for i < lr.size (at least max(steps) entries)."""
    steps: np.ndarray
    """Eval points: the model after this many updates (strictly increasing, >= warmup)."""
    loss: np.ndarray
    """Loss at each eval point (NaN = unknown)."""
    warmup: int = 0
    """Updates in the warmup (the laws count LR decreases only after it)."""
    tokens_per_step: int | None = None

    def __post_init__(self) -> None:
        if self.steps.size and (np.any(np.diff(self.steps) <= 0) or self.steps[-1] > self.lr.size):
            raise PredictError(f"curve {self.name}: eval steps must increase and stay within the {self.lr.size} LRs")

    @property
    def known(self) -> np.ndarray:
        return np.isfinite(self.loss)

    def with_points(self, keep: np.ndarray) -> Curve:
        return Curve(self.name, self.lr, self.steps[keep], self.loss[keep], self.warmup, self.tokens_per_step)


def curve_from_rows(name: str, steps: Sequence[int], lrs: Sequence[float], losses: Sequence[float] | None = None, *,
                    warmup_steps: int | None = None, schedule: Schedule | None = None, peak_lr: float | None = None,
                    where: str | None = None) -> Curve:
    """A curve from logged (step, lr[, loss]) rows: LR interpolated linearly between rows.

    ``where`` (default ``name``) is what error messages call the rows, e.g. their file.
    """
    where = where or name
    s = np.asarray(steps, dtype=np.int64)
    v = np.asarray(lrs, dtype=np.float64)
    if s.size == 0:
        raise PredictError(f"{where}: no rows")
    if np.any(np.diff(s) <= 0):
        bad = int(s[1:][np.diff(s) <= 0][0])
        raise PredictError(f"{where}: steps must strictly increase (step {bad})")
    if s[0] < 0 or np.any(~np.isfinite(v)) or np.any(v < 0):
        raise PredictError(f"{where}: steps must be >= 0 and lr finite and >= 0")
    n = int(s[-1])
    # The row at step s logs the LR of update s (the LR in effect after s updates); lr[n] is kept so every row's
    # LR is in the curve, though the model after n updates has used only lr[0..n-1].
    lr = np.interp(np.arange(n + 1), s, v)
    first = int(s[0])
    if schedule is not None:
        if peak_lr is None:
            raise PredictError(f"{where}: a schedule needs a peak LR (the LR the multipliers scale)")
        lr[:first] = [peak_lr * schedule.multiplier(i) for i in range(first)]
        warmup = _warmup_of(schedule)
    elif warmup_steps is not None:
        if warmup_steps < 0:
            raise PredictError(f"{where}: --warmup-steps must be >= 0, got {warmup_steps}")
        w = min(warmup_steps, first)
        lr[:w] = v[0] * (np.arange(w) + 1) / max(w, 1)
        lr[w:first] = v[0]
        warmup = warmup_steps
    else:
        lr[:first] = v[0] * (np.arange(first) + 1) / max(first, 1)
        warmup = first
    loss = np.full(s.size, np.nan) if losses is None else np.asarray(losses, dtype=np.float64)
    keep = s >= max(warmup, 1)  # the laws describe the loss from the end of the warmup on
    return Curve(name, lr, s[keep], loss[keep], warmup)


def _warmup_of(schedule: Schedule) -> int:
    for ph in schedule.phases():
        if ph.name == "warmup":
            return int(ph.end or 0)
    return 0


def read_curve_csv(path: str | Path, *, warmup_steps: int | None = None, schedule: dict[str, Any] | None = None,
                   need_loss: bool = True) -> Curve:
    """One CSV of ``step,lr[,loss]`` rows; PredictError names the file, row or column."""
    path = Path(path)
    text = read_text(path, "CSV file", PredictError)
    reader = csv.DictReader(text.splitlines())
    cols = [c.strip() for c in (reader.fieldnames or [])]
    missing = [c for c in ("step", "lr") + (("loss",) if need_loss else ()) if c not in cols]
    if missing:
        raise PredictError(f"{path}: missing column(s) {', '.join(missing)} (have: {', '.join(cols) or 'none'}; need step,lr,loss)")
    steps, lrs, losses = [], [], []
    has_loss = "loss" in cols
    for i, row in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        try:
            st = float(row["step"])
            if not math.isfinite(st) or st != int(st):
                raise ValueError("step is not an integer")
            steps.append(int(st))
            lrs.append(float(row["lr"]))
            losses.append(float(row["loss"]) if has_loss and row.get("loss") else math.nan)
        except (ValueError, KeyError) as exc:
            raise PredictError(f"{path}: line {i}: bad value ({exc})") from exc
    sched = None
    if schedule is not None:
        try:
            sched = schedule_from_spec(schedule, where="--schedule")
        except ConfigError as exc:
            raise PredictError(str(exc)) from exc
    peak = max(lrs) if lrs else None
    curve = curve_from_rows(path.stem, steps, lrs, losses if has_loss else None, warmup_steps=warmup_steps,
                            schedule=sched, peak_lr=peak, where=str(path))
    if need_loss and not np.any(curve.known):
        raise PredictError(f"{path}: no loss values after the warmup to fit")
    return curve


def curve_from_schedule(name: str, schedule: Schedule, peak_lr: float, steps: Sequence[int] | None = None,
                        total: int | None = None) -> Curve:
    """The curve to predict for a riverbed schedule: LR = peak_lr x multiplier(i)."""
    n = total if total is not None else schedule.total_steps
    if n is None:
        raise PredictError(f"schedule {name}: has no end; give a length")
    lr = peak_lr * np.array(schedule.values(n), dtype=np.float64)
    warmup = _warmup_of(schedule)
    pts = np.arange(max(warmup, 1), n + 1) if steps is None else np.asarray(steps, np.int64)
    return Curve(name, lr, pts, np.full(pts.size, np.nan), warmup)
