"""The predictor on a riverbed run tree: curves from metrics.jsonl + run.json, fits, untrained branches.

Each branch's LR sequence is its schedule spec (run.json) times the run's peak LR
(``[optim] lr``); its eval points are the ``eval`` rows of its own metrics.jsonl (a decay branch
contributes the rows after its fork: before it, it is the main branch). The default calibration
is the main branch plus the longest finished decay branch: the law needs one decay to see how
the loss responds to a falling LR.

>>> fit = fit_run("runs/tiny", law="mpl")                                   # doctest: +SKIP
>>> pred = predict_branch("runs/tiny", from_step=800, shape="1-sqrt", length="20%")   # doctest: +SKIP
>>> pred.final, pred.final_lo, pred.final_hi                                 # doctest: +SKIP

Every answer here goes through the fit's verdict: an unreliable fit is refused (UnreliableFit) unless
``force=True``, which marks every prediction made with it ``forced``; a predicted loss that no loss can
be (non-finite, <= 0, above the highest loss fitted on) is refused whatever ``force`` says.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from riverbed.io.strict_json import number_or_null
from riverbed.checkpoints import layout
from riverbed.errors import ConfigError
from riverbed.predict.curves import Curve, PredictError
from riverbed.predict.bootstrap import bootstrap_curve_fits
from riverbed.predict.fit import LawFit, fit_curve_law
from riverbed.predict.laws import DEFAULT_LAW
from riverbed.runs import Run
from riverbed.runs.fork import ForkRequest, decay_schedule, parse_length, tokens_per_step
from riverbed.runs.manifest import BranchRecord
from riverbed.runs.metrics import read_metrics
from riverbed.schedules import Schedule, schedule_from_spec, schedule_to_spec



def open_run(run: Run | str | Path) -> Run:
    return run if isinstance(run, Run) else Run.open(run)


def peak_lr(run: Run) -> float:
    lr = (run.manifest.config.get("optim") or {}).get("lr")
    if not isinstance(lr, (int, float)) or not lr > 0:
        raise PredictError(f"{run.path}: run.json config has no positive optim.lr (got {lr!r})")
    return float(lr)


def _warmup(schedule: Schedule) -> int:
    for ph in schedule.phases():
        if ph.name == "warmup":
            return int(ph.end or 0)
    return 0


def check_representable(schedule: Schedule, n: int, where: str) -> None:
    """Both laws model a loss under a non-increasing LR after the warmup; a rise (WSD-S, cyclic) is refused."""
    w = _warmup(schedule)
    v = np.asarray(schedule.values(n))
    rise = np.flatnonzero(np.diff(v[w:]) > 1e-12)
    if rise.size:
        step = int(w + rise[0] + 1)
        raise PredictError(f"{where}: the LR rises at step {step} after the warmup ({v[step - 1]:.4g} -> {v[step]:.4g} x peak); "
                           "the MPL and annealing-area laws only describe a non-increasing LR after the warmup")


def schedule_curve(name: str, schedule: Schedule, lr: float, n: int, steps: Sequence[int] | None = None,
                   loss: Sequence[float] | None = None) -> Curve:
    """A curve with ``n`` updates of ``lr x schedule.multiplier(i)``."""
    check_representable(schedule, n, name)
    w = _warmup(schedule)
    pts = np.arange(max(w, 1), n + 1) if steps is None else np.asarray(steps, np.int64)
    vals = np.full(pts.size, np.nan) if loss is None else np.asarray(loss, float)
    return Curve(name, lr * np.asarray(schedule.values(n), dtype=np.float64), pts, vals, w)


def branch_curve(run: Run, b: BranchRecord) -> Curve:
    """The eval curve of one branch with its LR sequence; PredictError names the branch."""
    rows = [r for r in read_metrics(layout.metrics_path(run.path, b.name)) if r.get("kind") == "eval" and r.get("eval_loss") is not None]
    fork = b.fork.step if b.fork is not None else -1
    pts: dict[int, float] = {}
    for r in rows:
        s, v = int(r["step"]), r["eval_loss"]
        if s > fork and isinstance(v, (int, float)) and math.isfinite(v):
            pts[s] = float(v)  # a resumed branch may log a step twice: the last row wins
    try:
        schedule = schedule_from_spec(b.schedule, where=f"branch {b.name}.schedule")
    except ConfigError as exc:
        raise PredictError(str(exc)) from exc
    steps = np.array(sorted(pts), dtype=np.int64)
    w = _warmup(schedule)
    steps = steps[steps >= max(w, 1)]
    if steps.size == 0:
        raise PredictError(f"{run.path}: branch {b.name!r} has no eval points after the warmup (metrics.jsonl has {len(rows)} eval rows)")
    n = max(int(steps[-1]), b.final.step if b.final is not None else 0)
    return schedule_curve(b.name, schedule, peak_lr(run), n, steps, [pts[int(s)] for s in steps])


#: Config sections that must agree between branches for one law to describe them all.
SETUP_SECTIONS = ("model", "data")


def _setup(run: Run, b: BranchRecord) -> tuple[dict[str, Any], str] | None:
    """The model and data config a branch trained with (its newest checkpoint's state.json) and where."""
    from riverbed.runs.run import read_state

    pt = b.final or b.progress
    refs = layout.list_checkpoints(run.path, b.name)
    path = run.path / pt.checkpoint if pt is not None and pt.checkpoint else (refs[-1].path if refs else None)
    if path is None or not (Path(path) / layout.STATE_FILE).is_file():
        return None
    cfg = read_state(Path(path)).config or {}
    return {k: cfg.get(k) for k in SETUP_SECTIONS}, str(Path(path) / layout.STATE_FILE)


def _first_difference(a: Any, b: Any, key: str) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = _first_difference(a.get(k), b.get(k), f"{key}.{k}")
            if d is not None:
                return d
        return None
    return None if a == b else key


def check_same_setup(run: Run, names: Sequence[str]) -> None:
    """PredictError naming the branch and the config key when a branch trained another model or data
    than the main branch: a loss law fitted on one says nothing about the other."""
    ref = _setup(run, run.branch(layout.MAIN))
    if ref is None:
        return
    for name in names:
        if name == layout.MAIN:
            continue
        got = _setup(run, run.branch(name))
        if got is None:
            continue
        key = _first_difference(ref[0], got[0], "config")
        if key is not None:
            def value(d: Any) -> Any:
                for part in key.split(".")[1:]:
                    d = d.get(part) if isinstance(d, dict) else None
                return d
            raise PredictError(f"{run.path}: branch {name!r} uses a different model or data than the main branch: "
                               f"{key[len('config.'):]} = {value(got[0])!r} in {got[1]} but {value(ref[0])!r} in {ref[1]}")


def finished_decays(run: Run) -> list[BranchRecord]:
    return [b for b in run.branches if b.kind == "decay" and b.status == "finished" and b.final is not None]


def default_calibration(run: Run, exclude: Sequence[str] = ()) -> list[str]:
    """The main branch and the longest finished decay branch (ties: the later budget)."""
    decays = [b for b in finished_decays(run) if b.name not in exclude]
    names = [layout.MAIN]
    if decays:
        longest = max(decays, key=lambda b: (b.final.step - b.fork.step, b.final.step))
        names.append(longest.name)
    return names


def fit_run(run: Run | str | Path, law: str = DEFAULT_LAW, calibrate: Sequence[str] | None = None, *, force: bool = False,
            max_points: int = 32, lam: float | None = None) -> LawFit:
    """Fit ``law`` to the run's main branch and calibration branches (default: :func:`default_calibration`);
    UnreliableFit (the reasons) when its diagnostics say it cannot be trusted, unless ``force``."""
    run = open_run(run)
    names = list(calibrate) if calibrate else default_calibration(run)
    check_same_setup(run, names)
    curves = [branch_curve(run, run.branch(n)) for n in names]
    fit = fit_curve_law(curves, law, meta={"run": str(run.path), "branches": names}, max_points=max_points, lam=lam)
    return fit.require_usable(force)



@dataclass(frozen=True)
class Prediction:
    """A predicted curve with its 95 % interval."""

    name: str
    law: str
    steps: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray
    lo: np.ndarray
    """Lower end of the 95 % interval at each step (NaN: none, the fit does not bound it)."""
    hi: np.ndarray
    """Upper end of the 95 % interval."""
    final_std: float
    """Standard deviation of the predicted final loss over the bootstrap refits (linearised without one)."""
    schedule: dict[str, Any] = field(default_factory=dict)
    interval: str = "none"
    """How the interval was found: "bootstrap (N refits)", "linearised" or "none"."""
    forced: bool = False
    """Made with an unreliable fit kept by --force."""

    @property
    def final(self) -> float:
        return float(self.loss[-1])

    @property
    def final_lo(self) -> float:
        return float(self.lo[-1])

    @property
    def final_hi(self) -> float:
        return float(self.hi[-1])

    def interval_text(self, digits: int = 4) -> str:
        if not (math.isfinite(self.final_lo) and math.isfinite(self.final_hi)):
            return "[unbounded]"
        return f"[{self.final_lo:.{digits}f}, {self.final_hi:.{digits}f}]"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "law": self.law, "schedule": self.schedule, "final_loss": self.final,
                "final_ci95": [number_or_null(self.final_lo), number_or_null(self.final_hi)], "interval": self.interval,
                "final_std": number_or_null(self.final_std), "forced": self.forced,
                "curve": [{"step": int(s), "tokens": int(t), "loss": float(v), "lo": number_or_null(a), "hi": number_or_null(b)}
                          for s, t, v, a, b in zip(self.steps, self.tokens, self.loss, self.lo, self.hi)]}


def predict_curve(fit: LawFit, curve: Curve, *, boot: Sequence[LawFit] = (), tokens_per_step: int = 1,
                  schedule: dict[str, Any] | None = None) -> Prediction:
    """``fit``'s prediction of ``curve`` with a 95 % interval: percentiles over ``boot`` refits, else linearised
    from the fit's parameter covariance. PredictError when the prediction is no loss (:meth:`LawFit.check_prediction`)."""
    with np.errstate(all="ignore"):
        pred = fit.predict(curve)
    fit.check_prediction(pred, curve.steps, f"{curve.name} ({fit.law})")
    if boot:
        with np.errstate(all="ignore"):
            ens = np.stack([b.predict(curve) for b in boot])
        ens = ens[np.all(np.isfinite(ens), axis=1)]
        if len(ens) >= 2:
            lo, hi = np.percentile(ens, 2.5, axis=0), np.percentile(ens, 97.5, axis=0)
            lo, hi = np.minimum(lo, pred), np.maximum(hi, pred)
            std, kind = float(np.std(ens[:, -1])), f"bootstrap ({len(boot)} refits)"
        else:
            lo = hi = np.full(pred.size, np.nan)
            std, kind = math.nan, "none"
    else:
        band = fit.linear_interval(curve)
        if band is None:
            lo = hi = np.full(pred.size, np.nan)
            std, kind = math.nan, "none"
        else:
            lo, hi = band
            std, kind = float((hi[-1] - lo[-1]) / (2 * 1.96)), "linearised"
    return Prediction(curve.name, fit.law, curve.steps, curve.steps * tokens_per_step, pred, lo, hi, std, schedule or {},
                      kind, fit.forced)


def _calibration_curves(run: Run, fit: LawFit) -> list[Curve]:
    names = fit.meta.get("branches") or default_calibration(run)
    return [branch_curve(run, run.branch(n)) for n in names]


def decay_request(run: Run, from_step: int, shape: str, length: str | int, min_ratio: float | None = None) -> tuple[Schedule, int]:
    """The DecayBranch of an untrained branch; the fork step must be a saved main checkpoint."""
    if isinstance(from_step, bool) or not isinstance(from_step, int) or from_step < 0:
        raise PredictError(f"--from: {from_step!r} is not a step number (>= 0)")
    run.checkpoint(from_step)  # RunError listing the saved steps if it was never saved
    n = parse_length(length, from_step, tokens_per_step(run))
    req = ForkRequest(f"{shape}-from{from_step}-len{n}", from_step, n, shape, min_ratio)
    return decay_schedule(run, req), n


def predict_branch(run: Run | str | Path, from_step: int, shape: str, length: str | int, *, law: str = DEFAULT_LAW,
                   fit: LawFit | None = None, min_ratio: float | None = None, bootstrap: int = 20, seed: int = 0,
                   progress: bool = False, force: bool = False) -> Prediction:
    """Predicted eval-loss curve of the decay branch ``shape`` from main's ``from_step`` over ``length``."""
    run = open_run(run)
    schedule, n = decay_request(run, from_step, shape, length, min_ratio)
    fit = (fit or fit_run(run, law, force=force)).require_usable(force)
    total = from_step + n
    curve = schedule_curve(f"{shape}-from{from_step}-len{n}", schedule, peak_lr(run), total, np.arange(from_step + 1, total + 1))
    boot = bootstrap_curve_fits(_calibration_curves(run, fit), fit, n=bootstrap, seed=seed, progress=progress) if bootstrap else []
    return predict_curve(fit, curve, boot=boot, tokens_per_step=tokens_per_step(run), schedule=schedule_to_spec(schedule))


def schedule_request(spec: dict[str, Any], steps: int | None = None) -> tuple[Schedule, int, str]:
    """The schedule of ``spec``, its length and name; PredictError when it has no end or the laws cannot describe it."""
    try:
        schedule = schedule_from_spec(spec, where="--schedule")
    except ConfigError as exc:
        raise PredictError(str(exc)) from exc
    n = steps if steps is not None else schedule.total_steps
    if n is None:
        raise PredictError("--schedule: the schedule has no end (an indefinite main branch); give --steps N")
    name = str(spec.get("type") or spec.get("preset"))
    check_representable(schedule, int(n), name)
    return schedule, int(n), name


def predict_schedule(run: Run | str | Path, spec: dict[str, Any], *, law: str = DEFAULT_LAW, fit: LawFit | None = None,
                     steps: int | None = None, bootstrap: int = 0, seed: int = 0, progress: bool = False,
                     force: bool = False) -> Prediction:
    """Predicted curve of any schedule on the run's model and data (same peak LR)."""
    run = open_run(run)
    schedule, n, name = schedule_request(spec, steps)
    fit = (fit or fit_run(run, law, force=force)).require_usable(force)
    curve = schedule_curve(name, schedule, peak_lr(run), int(n))
    boot = bootstrap_curve_fits(_calibration_curves(run, fit), fit, n=bootstrap, seed=seed, progress=progress) if bootstrap else []
    return predict_curve(fit, curve, boot=boot, tokens_per_step=tokens_per_step(run), schedule=schedule_to_spec(schedule))
