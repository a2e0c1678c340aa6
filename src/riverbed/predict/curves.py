"""Loss curves with their full LR sequence: what the laws are fitted on and predict.

A :class:`Curve` holds the per-update LRs ``lr[0..N-1]`` (update ``i`` used ``lr[i]``), the warmup
length, and the eval points: ``steps`` (the model after that many updates) with their ``loss``
(NaN where unknown, for a curve to predict). Curves come from a user's training logs
(:func:`read_curve`: CSV / W&B exports, JSONL, trainer_state.json, TensorBoard events, read by
riverbed.runs.logs.read), from a riverbed schedule (:func:`curve_from_schedule`) or from a run tree
(:mod:`riverbed.predict.runs`).

A log needs a step and an LR column (and a loss to fit or to score), logged at any interval,
blank cells skipped. The LR between rows is interpolated linearly; the steps before the first
row are a linear warmup from 0 to the first row's LR, unless ``warmup_steps`` (a linear warmup
over that many steps, then the first row's LR held) or ``schedule`` (a riverbed schedule spec
times ``peak_lr``, used for every step before the first row) says otherwise. Rows that start
inside the warmup -- the LR rises over the first rows -- extend the warmup to the row where it
stops rising (said in the curve's ``notes``), so a rising LR never enters the laws as schedule.

>>> import numpy as np
>>> c = curve_from_rows("x", [10, 20], [1.0, 0.5], [3.0, 2.9])
>>> c.lr.size, c.lr[[0, 9, 10, 15, 20]].tolist()
(21, [0.1, 1.0, 1.0, 0.75, 0.5])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from riverbed.errors import ConfigError, LogError, RiverbedError
from riverbed.runs.logs.read import LogColumns, read_log
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
    notes: tuple[str, ...] = ()
    """What the reader decided and the user should know (columns used, a warmup found in the rows)."""

    def __post_init__(self) -> None:
        if self.steps.size and (np.any(np.diff(self.steps) <= 0) or self.steps[-1] > self.lr.size):
            raise PredictError(f"curve {self.name}: eval steps must increase and stay within the {self.lr.size} LRs")

    @property
    def known(self) -> np.ndarray:
        return np.isfinite(self.loss)

    def with_points(self, keep: np.ndarray) -> Curve:
        return Curve(self.name, self.lr, self.steps[keep], self.loss[keep], self.warmup, self.tokens_per_step, self.notes)


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
    notes: tuple[str, ...] = ()
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
        peak = rising_prefix(v)
        if peak > 0:
            # The rows start inside the warmup: it ends where the LR stops rising. Counting the
            # rows before as schedule would make a rising LR enter the laws, which model a
            # non-increasing LR after the warmup.
            warmup = int(s[peak])
            notes = (f"{where}: the LR rises over the first {peak + 1} logged rows (step {first} to {warmup}); "
                     f"steps up to {warmup} are taken as the warmup (--warmup-steps or --schedule overrides)",)
    loss = np.full(s.size, np.nan) if losses is None else np.asarray(losses, dtype=np.float64)
    keep = s >= max(warmup, 1)  # the laws describe the loss from the end of the warmup on
    return Curve(name, lr, s[keep], loss[keep], warmup, notes=notes)


#: Relative rise from one logged LR to the next that counts as warmup (float noise in a log is less).
RISE = 1e-6


def rising_prefix(lrs: Sequence[float] | np.ndarray) -> int:
    """Index of the row where a rising start of the logged LRs peaks (0: the LR does not rise
    at the start: the rows begin after the warmup).

    >>> rising_prefix([0.1, 0.2, 0.3, 0.3, 0.2]), rising_prefix([1.0, 1.0, 0.5])
    (2, 0)
    """
    v = np.asarray(lrs, dtype=np.float64)
    k = 0
    while k + 1 < v.size and v[k + 1] > v[k] * (1 + RISE) and v[k + 1] > 0:
        k += 1
    return k


def _warmup_of(schedule: Schedule) -> int:
    for ph in schedule.phases():
        if ph.name == "warmup":
            return int(ph.end or 0)
    return 0


def curve_name(source: Path, depth: int = 0) -> str:
    """A log file's curve name: its stem, or the checkpoint folder of a Trainer's ``trainer_state.json``;
    ``depth`` more parent folders in front (to tell apart logs of the same name from several runs).

    >>> curve_name(Path("a/hf_lin/checkpoint-48/trainer_state.json"), 1), curve_name(Path("runs/x/loss.csv"))
    ('hf_lin/checkpoint-48', 'loss')
    """
    parts = source.parent.parts if source.name == "trainer_state.json" else (*source.parent.parts, source.stem)
    return "/".join(parts[-(depth + 1):]) if parts else source.name


def distinct_curve_names(curves: Sequence[Curve], sources: Sequence[str | Path]) -> list[Curve]:
    """``curves`` (read from ``sources``) with names that differ: where two share one, each gets as many
    parent folders as it takes (three Trainer runs' ``checkpoint-48`` become ``lin/checkpoint-48``, ...)."""
    names = [c.name for c in curves]
    depth = 0
    while len(set(names)) < len(names) and depth < 16:
        depth += 1
        dup = {n for n in names if names.count(n) > 1}
        names = [curve_name(Path(s).absolute(), depth) if n in dup else n for s, n in zip(sources, names)]
    if len(set(names)) < len(names):
        names = [str(s) for s in sources]
    return [c if c.name == n else replace(c, name=n) for c, n in zip(curves, names)]


def read_curve(path: str | Path, *, warmup_steps: int | None = None, schedule: dict[str, Any] | None = None,
               need_loss: bool = True, columns: LogColumns | None = None) -> Curve:
    """One training log (CSV / W&B export, JSONL, trainer_state.json, TensorBoard events; see
    riverbed.runs.logs.read) as a curve: the LR column and the loss -- the held-out loss when the log
    has one and ``columns.loss`` is not given, else the training loss. PredictError names the
    file and what is missing; the curve's ``notes`` say which columns were used and any warmup
    found in the rows."""
    cols = columns or LogColumns()
    try:
        log = read_log(path, cols)
        log.require("lr")
    except LogError as exc:
        raise PredictError(str(exc)) from None
    source = Path(path)
    loss = None if cols.loss is not None or log.eval_loss is None or not len(log.eval_loss) else log.eval_loss
    loss = loss or log.loss
    if need_loss and loss is None:
        try:
            log.require("loss")
        except LogError as exc:
            raise PredictError(str(exc)) from None
    lr = log.lr
    assert lr is not None
    steps = np.union1d(lr.steps, loss.steps) if loss is not None else lr.steps
    lrs = np.interp(steps, lr.steps, lr.values)  # between LR rows: linear; outside them: held
    losses = None
    if loss is not None:
        at = {int(s): v for s, v in zip(loss.steps, loss.values)}
        losses = [at.get(int(s), math.nan) for s in steps]
    sched = None
    if schedule is not None:
        try:
            sched = schedule_from_spec(schedule, where="--schedule")
        except ConfigError as exc:
            raise PredictError(str(exc)) from exc
    name = curve_name(source)
    curve = curve_from_rows(name, steps.tolist(), lrs.tolist(), losses, warmup_steps=warmup_steps,
                            schedule=sched, peak_lr=float(lr.values.max()), where=str(source))
    used = f"{source}: step, LR {lr.column!r}" + (f", loss {loss.column!r}" if loss is not None else "")
    curve = replace(curve, notes=(used, *curve.notes))
    if need_loss and not np.any(curve.known):
        raise PredictError(f"{source}: no loss values after the warmup to fit")
    return curve


#: The name the curve reader had when it read CSV files only.
read_curve_csv = read_curve


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
