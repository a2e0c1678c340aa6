"""Should the predictor be trusted on this run? Leave-one-out over its finished decay branches.

For each finished decay branch: fit each law on the main branch and the *other* finished decay
branches, predict the held-out branch's final eval loss, and compare with the trained one. Two
baselines a user has without the predictor sit beside it: ``main``, the undecayed main branch's eval
loss at the same step (interpolated between its eval rows), and ``merge``, the PMA merge of the last
N main checkpoints up to the branch's end, evaluated on the run's held-out batches
(:func:`riverbed.scaling.merge_points.merge_points`). Each law's row also carries the seconds the
fit + prediction took against the seconds the branch took to train, measured from the wall-clock
``time`` of its metrics rows (each training session from its start/resume/init event to its last
row, summed over sessions); a run logged before rows carried a time falls back to its tokens over
its logged throughput, and says so (``train_s_source``).

>>> report = loo_check("runs/tiny")                                          # doctest: +SKIP
>>> report.summary()["mpl"]["mean_rel_error"]                                # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from riverbed.checkpoints import layout
from riverbed.predict.curves import PredictError
from riverbed.predict.fit import fit_law, progress_steps
from riverbed.predict.laws import LAWS
from riverbed.predict.runs import branch_curve, check_same_setup, finished_decays
from riverbed.runs import Run
from riverbed.runs.manifest import BranchRecord
from riverbed.scaling.merge_points import merge_points
from riverbed.runs.metrics import read_metrics

BASELINES = ("main", "merge")


@dataclass(frozen=True)
class BranchCheck:
    """One held-out branch: its trained final loss and every method's estimate of it."""

    branch: str
    step: int
    loss: float
    estimates: dict[str, float | None]
    """method -> predicted final loss (None where the method has no estimate)."""
    fit_s: dict[str, float] = field(default_factory=dict)
    """law -> seconds to fit and predict."""
    train_s: float | None = None
    """Seconds the branch took to train (measured from its metrics rows, else estimated)."""
    train_s_source: str | None = None
    """"measured" (wall clock of its metrics rows) or "estimated" (tokens / logged throughput)."""

    def abs_error(self, method: str) -> float | None:
        v = self.estimates.get(method)
        return None if v is None else abs(v - self.loss)

    def rel_error(self, method: str) -> float | None:
        e = self.abs_error(method)
        return None if e is None else e / self.loss

    def to_dict(self) -> dict[str, Any]:
        return {"branch": self.branch, "step": self.step, "loss": self.loss,
                "methods": {m: {"loss": v, "abs_error": self.abs_error(m), "rel_error": self.rel_error(m)} for m, v in self.estimates.items()},
                "fit_s": self.fit_s, "train_s": self.train_s, "train_s_source": self.train_s_source}


@dataclass(frozen=True)
class CheckReport:
    run: str
    methods: tuple[str, ...]
    branches: tuple[BranchCheck, ...]

    def summary(self) -> dict[str, dict[str, float | None]]:
        out: dict[str, dict[str, float | None]] = {}
        for m in self.methods:
            a = [b.abs_error(m) for b in self.branches if b.abs_error(m) is not None]
            r = [b.rel_error(m) for b in self.branches if b.rel_error(m) is not None]
            out[m] = {"mean_abs_error": float(np.mean(a)) if a else None, "mean_rel_error": float(np.mean(r)) if r else None,
                      "branches": len(a)}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "branches": [b.to_dict() for b in self.branches], "summary": self.summary()}


def _main_loss_at(run: Run, step: int) -> float | None:
    rows = [r for r in read_metrics(layout.metrics_path(run.path, layout.MAIN)) if r.get("kind") == "eval"]
    pts = sorted({int(r["step"]): float(r["eval_loss"]) for r in rows if isinstance(r.get("eval_loss"), (int, float))}.items())
    if not pts or step < pts[0][0] or step > pts[-1][0]:
        return None  # the main branch never got there: no undecayed loss at the same tokens
    s, v = zip(*pts)
    return float(np.interp(step, s, v))


SESSION_STARTS = ("start", "resume", "init")  # the event a training process logs first (training/loop.py)


def measured_seconds(rows: Sequence[dict[str, Any]]) -> float | None:
    """Wall-clock seconds of training in ``rows`` (one branch's metrics): each session runs from its
    start/resume/init event to its last row; None when the rows carry no time."""
    total, start, last, seen = 0.0, None, None, False
    for r in rows:
        t = r.get("time")
        if not isinstance(t, (int, float)):
            continue
        if r.get("kind") == "event" and r.get("event") in SESSION_STARTS:
            if start is not None and last is not None:
                total += last - start
            start, last = float(t), float(t)
            continue
        if start is not None:
            last, seen = float(t), True
    if start is not None and last is not None:
        total += last - start
    return total if seen else None


def train_seconds(run: Run, b: BranchRecord) -> tuple[float | None, str | None]:
    """Seconds ``b`` took to train and how that was found ("measured" / "estimated")."""
    rows = read_metrics(layout.metrics_path(run.path, b.name))
    measured = measured_seconds(rows)
    if measured is not None:
        return measured, "measured"
    tps = [float(r["tokens_per_s"]) for r in rows
           if r.get("kind") == "train" and isinstance(r.get("tokens_per_s"), (int, float)) and r["tokens_per_s"] > 0]
    if not tps or b.final is None or b.fork is None:
        return None, None
    return (b.final.tokens - b.fork.tokens) / float(np.median(tps)), "estimated"


def loo_check(run: Run | str | Path, *, laws: Sequence[str] = LAWS, merge: bool = True, merge_last: int = 4,
              merge_method: str = "sma", max_points: int = 32, progress: bool = False) -> CheckReport:
    """Leave-one-out errors of each law and the ``main``/``merge`` baselines over the finished decay branches."""
    run = run if isinstance(run, Run) else Run.open(run)
    decays = [b for b in finished_decays(run) if b.final.eval_loss is not None]
    check_same_setup(run, [b.name for b in decays])
    if len(decays) < 2:
        raise PredictError(f"{run.path}: leave-one-out needs at least 2 finished decay branches (has {len(decays)}); "
                           "fork more with `riverbed branch`")
    main = branch_curve(run, run.branch(layout.MAIN))
    curves = {b.name: branch_curve(run, b) for b in decays}
    merged: dict[str, float] = {}
    if merge:
        merged = {r.branch: r.merge_loss for r in merge_points(run.path, last=merge_last, method=merge_method, progress=progress).rows}
    rows = []
    for i in progress_steps(len(decays), f"leave-one-out ({len(decays)} branches x {len(laws)} laws)", progress):
        b = decays[i]
        est: dict[str, float | None] = {}
        secs: dict[str, float] = {}
        target = curves[b.name]
        for law in laws:
            t0 = time.perf_counter()
            fit = fit_law([main] + [curves[o.name] for o in decays if o.name != b.name], law, max_points=max_points)
            est[law] = float(fit.predict(target, [b.final.step])[-1])
            secs[law] = time.perf_counter() - t0
        est["main"] = _main_loss_at(run, b.final.step)
        if merge:
            est["merge"] = merged.get(b.name)
        rows.append(BranchCheck(b.name, b.final.step, float(b.final.eval_loss), est, secs, *train_seconds(run, b)))
    methods = tuple(laws) + (("main", "merge") if merge else ("main",))
    return CheckReport(str(run.path), methods, tuple(rows))


def fmt_pct(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{100 * x:.2f} %"
