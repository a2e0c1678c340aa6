"""One function per `riverbed predict` verb: what the command computes, as typed results with ``to_dict``.

The CLI (``riverbed.cli.predict``) parses its flags, calls one of these and prints the result; a
Python caller gets the same answers, refusals and intervals.

>>> fit = fit_sources(["runs/tiny"], "mpl")                                         # doctest: +SKIP
>>> pset = predict_branches("runs/tiny", 800, "1-sqrt", "20%", law="all")           # doctest: +SKIP
>>> pset.to_dict()["predictions"][0]["final_ci95"]                                  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from riverbed.io.strict_json import number_or_null
from riverbed.predict.curves import Curve, PredictError, distinct_curve_names, read_curve
from riverbed.predict.fit import LawFit, fit_curve_law
from riverbed.predict.laws import DEFAULT_LAW, LAWS
from riverbed.predict.runs import (
    Prediction,
    branch_curve,
    decay_request,
    fit_run,
    open_run,
    predict_branch,
    predict_schedule,
    schedule_request,
    tokens_per_step,
)
from riverbed.errors import ConfigError
from riverbed.runs import Run
from riverbed.runs.logs.read import LogColumns
from riverbed.schedules import spec_from_text


def parse_spec(text: str) -> dict[str, Any]:
    """A schedule spec from inline JSON or a TOML/JSON file ([schedule] table or top-level keys):
    :func:`riverbed.schedules.spec_from_text`, its refusal as a PredictError."""
    try:
        return spec_from_text(text, where="--schedule")
    except ConfigError as exc:
        raise PredictError(str(exc)) from None


def load_law(path: str | Path) -> LawFit:
    """A law file written by ``riverbed predict fit -o`` (:meth:`LawFit.to_json`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PredictError(f"{path}: cannot read the law file ({exc.strerror})") from None
    return LawFit.from_json(text, where=str(path))


def fit_sources(sources: Sequence[str | Path], law: str = DEFAULT_LAW, *, calibrate: Sequence[str] | None = None,
                warmup_steps: int | None = None, schedule: str | None = None, max_points: int = 32,
                lam: float | None = None, force: bool = False, columns: LogColumns | None = None,
                on_note: Callable[[str], None] | None = None) -> LawFit:
    """Fit ``law`` to one run directory or to training logs (step,lr,loss CSV / W&B exports, JSONL,
    trainer_state.json, TensorBoard events; ``columns`` names theirs where aliases do not find them);
    UnreliableFit unless usable or ``force``. ``on_note`` hears what the log reader decided."""
    srcs = [Path(s) for s in sources]
    dirs = [s for s in srcs if (s / "run.json").is_file()]  # other folders: Trainer output_dirs, TensorBoard logs
    if dirs:
        if len(srcs) != 1:
            raise PredictError(f"give one run directory or log files, not both/several ({', '.join(map(str, srcs))})")
        if warmup_steps is not None or schedule is not None:
            raise PredictError("--warmup-steps/--schedule are for logs; a run's schedules come from its run.json")
        if columns is not None and columns.given():
            raise PredictError("--step-col/--lr-col/--loss-col name a log's columns; a run's metrics are riverbed's own")
        return fit_run(dirs[0], law, calibrate, lam=lam, max_points=max_points, force=force)
    if calibrate:
        raise PredictError("--calibrate names branches of a run directory, not log files")
    spec = parse_spec(schedule) if schedule else None
    curves = distinct_curve_names([read_curve(s, warmup_steps=warmup_steps, schedule=spec, columns=columns) for s in srcs], srcs)
    for note in (n for c in curves for n in c.notes):
        if on_note is not None:
            on_note(note)
    fit = fit_curve_law(curves, law, lam=lam, max_points=max_points, meta={"sources": [str(s) for s in srcs]})
    return fit.require_usable(force)



@dataclass(frozen=True)
class CurvePrediction:
    """A law file's prediction at every row of a step,lr[,loss] CSV, with 95 % linearised intervals."""

    law: str
    csv: str
    rows: tuple[dict[str, Any], ...]
    forced: bool = False

    @property
    def errors(self) -> dict[str, float]:
        e = [r["rel_error"] for r in self.rows if "rel_error" in r]
        return {"mean_rel_error": float(np.mean(e)), "max_rel_error": float(np.max(e))} if e else {}

    def to_dict(self) -> dict[str, Any]:
        return {"law": self.law, "csv": self.csv, "forced": self.forced, "interval": "linearised", "rows": list(self.rows),
                **self.errors}


def predict_csv(fit: LawFit, csv: str | Path, *, warmup_steps: int | None = None, schedule: str | None = None,
                force: bool = False, columns: LogColumns | None = None,
                on_note: Callable[[str], None] | None = None) -> CurvePrediction:
    """``fit``'s predicted loss at each row of ``csv`` -- any training log riverbed reads -- (and its
    error where the log has a loss)."""
    fit = fit.require_usable(force)
    spec = parse_spec(schedule) if schedule else None
    curve = read_curve(csv, warmup_steps=warmup_steps, schedule=spec, need_loss=False, columns=columns)
    for note in curve.notes:
        if on_note is not None:
            on_note(note)
    with np.errstate(all="ignore"):
        pred = fit.predict(curve)
    fit.check_prediction(pred, curve.steps, f"{csv} ({fit.law})")
    band = fit.linear_interval(curve)
    lo, hi = band if band is not None else (np.full(pred.size, np.nan), np.full(pred.size, np.nan))
    rows = []
    for i, (s, p, y) in enumerate(zip(curve.steps, pred, curve.loss)):
        row: dict[str, Any] = {"step": int(s), "lr": float(curve.lr[min(int(s), curve.lr.size - 1)]), "pred": float(p),
                               "lo": number_or_null(lo[i]), "hi": number_or_null(hi[i])}
        if np.isfinite(y):
            row.update(loss=float(y), rel_error=float(abs(p - y) / y))
        rows.append(row)
    return CurvePrediction(fit.law, str(csv), tuple(rows), fit.forced)


@dataclass(frozen=True)
class PredictionSet:
    """Predictions on a run (one per law), the trained branches with the same schedule, and what to plot."""

    run: Run
    predictions: tuple[Prediction, ...]
    trained: dict[str, float] = field(default_factory=dict)
    """Branch -> trained final eval loss, for a trained branch with a predicted schedule."""
    measured: tuple[Curve, ...] = ()
    """The main branch's curve and those trained branches' (for a plot)."""
    tokens_per_step: int = 1

    @property
    def law_spread(self) -> float | None:
        finals = [p.final for p in self.predictions]
        return float(max(finals) - min(finals)) if len(finals) > 1 else None

    @property
    def forced(self) -> bool:
        return any(p.forced for p in self.predictions)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"run": str(self.run.path), "forced": self.forced, "predictions": [p.to_dict() for p in self.predictions]}
        if self.law_spread is not None:
            doc["law_spread"] = self.law_spread
        if self.trained:
            doc["trained"] = self.trained
        return doc


def _fits(run: Run, law: str, fit: LawFit | str | Path | None, force: bool) -> dict[str, LawFit]:
    if fit is not None:
        f = fit if isinstance(fit, LawFit) else load_law(fit)
        return {f.law: f.require_usable(force)}
    laws = (DEFAULT_LAW, *(k for k in LAWS if k != DEFAULT_LAW)) if law == "all" else (law,)  # the CLI's order
    return {k: fit_run(run, k, force=force) for k in laws}


def _with_trained(run: Run, preds: list[Prediction]) -> PredictionSet:
    # A branch of the run already trained on the predicted schedule is shown (and reported) beside the prediction.
    trained = [b for b in run.branches if b.kind != "main" and b.final is not None and b.final.eval_loss is not None
               and any(b.schedule == p.schedule for p in preds)]
    measured = [branch_curve(run, run.branch("main"))] + [branch_curve(run, b) for b in trained]
    return PredictionSet(run, tuple(preds), {b.name: b.final.eval_loss for b in trained}, tuple(measured), tokens_per_step(run))


def predict_branches(run: Run | str | Path, from_step: int, shape: str, length: str | int, *, law: str = DEFAULT_LAW,
                     fit: LawFit | str | Path | None = None, min_ratio: float | None = None, bootstrap: int = 20,
                     seed: int = 0, force: bool = False, progress: bool = False) -> PredictionSet:
    """`predict branch`: the untrained decay branch under each law (``law="all"``: every law, and their spread)."""
    run = open_run(run)
    decay_request(run, from_step, shape, length, min_ratio)  # a bad fork or shape before any fit
    preds = [predict_branch(run, from_step, shape, length, law=k, fit=f, min_ratio=min_ratio, bootstrap=bootstrap,
                            seed=seed, progress=progress, force=force) for k, f in _fits(run, law, fit, force).items()]
    return _with_trained(run, preds)


def predict_any_schedule(run: Run | str | Path, spec: dict[str, Any], *, law: str = DEFAULT_LAW, fit: LawFit | str | Path | None = None,
                         steps: int | None = None, bootstrap: int = 20, seed: int = 0, force: bool = False,
                         progress: bool = False) -> PredictionSet:
    """`predict schedule --schedule SPEC`: any schedule's curve on the run's model and data."""
    run = open_run(run)
    schedule_request(spec, steps)  # a bad or unrepresentable schedule before any fit
    (k, f), = _fits(run, law, fit, force).items()
    pred = predict_schedule(run, spec, law=k, fit=f, steps=steps, bootstrap=bootstrap, seed=seed, progress=progress, force=force)
    return _with_trained(run, [pred])

