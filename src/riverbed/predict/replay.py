"""The forecast monitor replayed over a main branch already logged: a riverbed run, a run adopted from another
stack, or a training log (a Trainer's trainer_state.json, a W&B export, a CSV, TensorBoard events).

At each eval point of the main branch, in order, :class:`riverbed.predict.forecast.Forecaster` gets only what
was known at that step -- the eval points up to it, and the decay branches of the run that had ended by then --
and says what a ``shape`` decay over ``decay_fraction`` of the budget forked there would reach (fork k, decay
D = round(f k / (1 - f)): what ``riverbed branch --length 20%`` trains), with its interval; it
stays silent until its refitted law is usable, exactly as the monitor does during training. A log holds no
decay branches, so it needs a ``prior`` (a law file fitted on runs that decayed, e.g. ``riverbed predict fit``
on a riverbed run with decay branches): its decay parameters are kept and L0, A, alpha refitted on the log.

Where the run has a finished decay branch of the same shape ending where a forecast made at its fork step ends,
the replay scores that forecast against the branch's measured loss: how far the monitor was off on this run.

>>> r = replay_forecast("runs/tiny", decay_fraction=0.2)                            # doctest: +SKIP
>>> [(f.step, f.loss, f.lo, f.hi) for f in r.forecasts], r.checks            # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from riverbed.checkpoints import layout
from riverbed.io.progress import Progress
from riverbed.predict.curves import Curve, PredictError, read_curve
from riverbed.predict.fit import LawFit
from riverbed.predict.forecast import Forecast, Forecaster
from riverbed.predict.laws import DEFAULT_LAW, LAWS
from riverbed.predict.runs import branch_curve, finished_decays, peak_lr
from riverbed.runs import Run
from riverbed.runs.logs.read import LogColumns
from riverbed.schedules import DecayBranch, Schedule, Tabulated, schedule_from_spec


@dataclass(frozen=True)
class ForecastCheck:
    """A forecast made at a decay branch's fork step beside what that branch measured."""

    branch: str
    fork: int
    end: int
    forecast: float
    lo: float
    hi: float
    measured: float

    @property
    def rel_error(self) -> float:
        return (self.forecast - self.measured) / self.measured

    @property
    def inside(self) -> bool:
        return self.lo <= self.measured <= self.hi

    def to_dict(self) -> dict[str, Any]:
        return {"branch": self.branch, "fork": self.fork, "end": self.end, "forecast": self.forecast, "lo": self.lo,
                "hi": self.hi, "measured": self.measured, "rel_error": self.rel_error, "inside": self.inside}


@dataclass(frozen=True)
class Replay:
    """Every forecast the monitor would have made along ``main`` (none before the first usable fit)."""

    source: str
    law: str
    shape: str
    decay_fraction: float
    """The forecast decay's share of the budget (fork + decay)."""
    main: Curve
    forecasts: tuple[Forecast, ...]
    checks: tuple[ForecastCheck, ...]
    forced: bool = False

    @property
    def first(self) -> int | None:
        """The first step with a forecast (None: the fit never became usable)."""
        return self.forecasts[0].step if self.forecasts else None

    def to_dict(self) -> dict[str, Any]:
        k = self.main.known
        return {"source": self.source, "law": self.law, "forced": self.forced, "shape": self.shape, "decay_fraction": self.decay_fraction,
                "main": {"steps": self.main.steps[k].tolist(), "loss": self.main.loss[k].tolist()},
                "first_forecast_step": self.first, "forecasts": [f.row() for f in self.forecasts],
                "checks": [c.to_dict() for c in self.checks],
                "mean_abs_rel_error": (float(np.mean([abs(c.rel_error) for c in self.checks])) if self.checks else None)}


def _from_run(run: Run) -> tuple[Curve, Schedule, float, list[tuple[Curve, Any]]]:
    main_rec = run.branch(layout.MAIN)
    main = branch_curve(run, main_rec)
    schedule = schedule_from_spec(main_rec.schedule, where="main.schedule")
    decays = []
    for b in finished_decays(run):
        try:
            decays.append((branch_curve(run, b), b))
        except PredictError:
            continue  # a branch without eval points calibrates nothing
    return main, schedule, peak_lr(run), decays


def _from_log(path: Path, columns: LogColumns | None, warmup_steps: int | None,
              spec: dict[str, Any] | None) -> tuple[Curve, Schedule, float]:
    curve = read_curve(path, warmup_steps=warmup_steps, schedule=spec, columns=columns)
    peak = float(np.max(curve.lr))
    if not peak > 0:
        raise PredictError(f"{path}: the logged LR is never positive")
    # The logged LR as the schedule; past the log's end the last LR holds (the main branch goes on at it).
    return curve, Tabulated(tuple(float(v) for v in curve.lr / peak), warmup=curve.warmup), peak


def replay_forecast(source: Run | str | Path, *, prior: LawFit | None = None, law: str | None = None, decay_fraction: float = 0.2,
                    shape: str = "1-sqrt", min_ratio: float = 0.0, min_points: int = 8, columns: LogColumns | None = None,
                    warmup_steps: int | None = None, schedule: dict[str, Any] | None = None, force: bool = False,
                    progress: bool = False) -> Replay:
    """The forecast monitor over ``source`` (a run directory or one log file); see the module doc. PredictError on
    unusable input; UnreliableFit on a prior its diagnostics refuse (unless kept forced, or ``force``)."""
    if not (isinstance(decay_fraction, (int, float)) and 0 < decay_fraction < 1):
        raise PredictError(f"--decay-fraction: must be in (0, 1), got {decay_fraction!r}")
    if isinstance(min_points, bool) or not isinstance(min_points, int) or min_points < 2:
        raise PredictError(f"--min-points: must be an integer >= 2, got {min_points!r}")
    if prior is not None:
        prior = prior.require_usable(force)
        if law is not None and law != prior.law:
            raise PredictError(f"--law {law}: the prior is a {prior.law} fit")
    law = prior.law if prior is not None else (law or DEFAULT_LAW)
    if law not in LAWS:
        raise PredictError(f"--law {law!r}: choose one of {', '.join(LAWS)}")
    path = source.path if isinstance(source, Run) else Path(source)
    if isinstance(source, Run) or (path / layout.MANIFEST).is_file():
        if columns is not None and columns.given() or warmup_steps is not None or schedule is not None:
            raise PredictError("--step-col/--lr-col/--loss-col/--warmup-steps/--schedule are for logs; a run's curves "
                               "come from its run.json and metrics")
        run = source if isinstance(source, Run) else Run.open(path)
        main, sched, peak, decays = _from_run(run)
    else:
        main, sched, peak = _from_log(path, columns, warmup_steps, schedule)
        decays = []
    if not decays and prior is None:
        raise PredictError(f"{path}: {'a log' if not (path / layout.MANIFEST).is_file() else 'the run'} has no finished decay "
                           "branch to calibrate a decay on: give --prior LAW.json (a fit on runs that decayed, e.g. "
                           "`riverbed predict fit RUN -o law.json` on a run with decay branches)")
    # The forecaster's decay is a fraction of the fork step: D = f / (1 - f) x k is f of the budget k + D.
    f = Forecaster(sched, peak, law=law, decay=decay_fraction / (1 - decay_fraction), shape=shape, min_ratio=min_ratio,
                   min_points=min_points, prior=prior)
    DecayBranch(sched, 1, 1, shape, min_ratio)  # a bad shape / min ratio is refused before the replay
    k = main.known
    steps, losses = main.steps[k], main.loss[k]
    out: list[Forecast] = []
    with Progress(enabled=progress, transient=True) as bar:
        task = bar.add(f"replaying the {law} forecast", int(steps.size), unit="evals")
        for s, v in zip(steps.tolist(), losses.tolist()):
            f.add(int(s), float(v))
            known = [c for c, b in decays if b.final.step <= s]  # only branches that had ended by this step
            fc = f.forecast(int(s), decays=known)
            if fc is not None:
                out.append(fc)
            bar.advance(task)
    by_step = {fc.step: fc for fc in out}
    checks = []
    for c, b in decays:
        fc = by_step.get(b.fork.step) if b.fork is not None else None
        if fc is None or fc.step + fc.decay_steps != b.final.step or b.schedule.get("shape") != shape:
            continue
        measured = b.final.eval_loss
        if measured is not None and math.isfinite(measured):
            checks.append(ForecastCheck(b.name, b.fork.step, b.final.step, fc.loss, fc.lo, fc.hi, float(measured)))
    return Replay(str(path), law, shape, float(decay_fraction), main, tuple(out), tuple(checks), bool(prior is not None and prior.forced))
