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

A fold whose fit is unreliable (its diagnostics) or whose prediction is no loss says why
(``refused``) and has no estimate (with ``force``, an unreliable fold's estimate is kept, still refused
in the verdict). The report ends with a plain statement (:meth:`CheckReport.verdict`): a law is
trusted on this run when every fold's fit was usable and its mean leave-one-out error is below every
baseline's; otherwise the statement names what failed.

>>> report = loo_check("runs/tiny")                                          # doctest: +SKIP
>>> report.summary()["mpl"]["mean_rel_error"], report.verdict()["statement"]  # doctest: +SKIP
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
from riverbed.predict.bootstrap import progress_steps
from riverbed.predict.fit import fit_curve_law
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
    refused: dict[str, str] = field(default_factory=dict)
    """law -> why its fit or prediction is not an answer here (an unreliable fit, a prediction that is no loss)."""
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    """law -> 95 % linearised interval of the measured loss it predicts (the fold's parameter covariance plus
    its eval noise), where it has one."""

    def abs_error(self, method: str) -> float | None:
        v = self.estimates.get(method)
        return None if v is None else abs(v - self.loss)

    def rel_error(self, method: str) -> float | None:
        e = self.abs_error(method)
        return None if e is None else e / self.loss

    def to_dict(self) -> dict[str, Any]:
        return {"branch": self.branch, "step": self.step, "loss": self.loss,
                "methods": {m: {"loss": v, "abs_error": self.abs_error(m), "rel_error": self.rel_error(m),
                                "ci95": list(self.intervals[m]) if m in self.intervals else None} for m, v in self.estimates.items()},
                "fit_s": self.fit_s, "train_s": self.train_s, "train_s_source": self.train_s_source, "refused": self.refused}


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

    @property
    def laws(self) -> tuple[str, ...]:
        return tuple(m for m in self.methods if m not in BASELINES)

    def verdict(self) -> dict[str, Any]:
        """Trust a law on this run or not, from its leave-one-out errors against the baselines.

        ``{"trust": bool, "law": best trusted law or None, "statement": str, "laws": {law: {"trust", "why"}}}``.
        """
        summ = self.summary()
        base = {m: summ[m]["mean_rel_error"] for m in BASELINES if m in self.methods and summ[m]["mean_rel_error"] is not None}
        names = {"main": "the undecayed main branch", "merge": "the PMA merge"}
        per: dict[str, dict[str, Any]] = {}
        for law in self.laws:
            refused = [b for b in self.branches if law in b.refused]
            err = summ[law]["mean_rel_error"]
            if refused:
                why = (f"its fit was refused on {len(refused)} of {len(self.branches)} held-out branches "
                       f"({refused[0].branch}: {refused[0].refused[law]})")
                per[law] = {"trust": False, "why": why}
                continue
            worse = [m for m, v in base.items() if not err < v]
            against = ", ".join(f"{names[m]} {fmt_pct(v)}" for m, v in base.items())
            if worse:
                why = (f"its leave-one-out error ({fmt_pct(err)}) is not below {' and '.join(names[m] for m in worse)} "
                       f"({against}): the baseline already does as well")
            else:
                why = f"its leave-one-out error ({fmt_pct(err)}) is below " + (against if base else "no baseline (none measured)")
            per[law] = {"trust": not worse, "why": why}
        trusted = sorted((summ[law]["mean_rel_error"], law) for law in per if per[law]["trust"])
        if trusted:
            law = trusted[0][1]
            statement = f"Trust the {law} law on this run: {per[law]['why']}."
        else:
            statement = "Do not trust the laws on this run: " + "; ".join(f"{law}: {v['why']}" for law, v in per.items()) + "."
        return {"trust": bool(trusted), "law": trusted[0][1] if trusted else None, "statement": statement, "laws": per}

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "branches": [b.to_dict() for b in self.branches], "summary": self.summary(),
                "verdict": self.verdict()}


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
              merge_method: str = "sma", max_points: int = 32, progress: bool = False, force: bool = False) -> CheckReport:
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
        refused: dict[str, str] = {}
        bands: dict[str, tuple[float, float]] = {}
        target = curves[b.name]
        for law in laws:
            t0 = time.perf_counter()
            est[law] = None
            try:
                fit = fit_curve_law([main] + [curves[o.name] for o in decays if o.name != b.name], law, max_points=max_points)
                if not fit.usable:
                    refused[law] = f"unreliable fit: {'; '.join(fit.diagnostics.reasons)}"
                    if not force:
                        continue
                with np.errstate(all="ignore"):
                    v = fit.predict(target, [b.final.step])
                fit.check_prediction(v, [b.final.step], f"{b.name} ({law})")
                est[law] = float(v[-1])
                band = fit.linear_interval(target, [b.final.step], observed=True)
                if band is not None and np.all(np.isfinite(band)):
                    bands[law] = (float(band[0][-1]), float(band[1][-1]))
            except PredictError as exc:
                est[law] = None
                refused[law] = str(exc)
            finally:
                secs[law] = time.perf_counter() - t0
        est["main"] = _main_loss_at(run, b.final.step)
        if merge:
            est["merge"] = merged.get(b.name)
        rows.append(BranchCheck(b.name, b.final.step, float(b.final.eval_loss), est, secs, *train_seconds(run, b), refused, bands))
    methods = tuple(laws) + (("main", "merge") if merge else ("main",))
    return CheckReport(str(run.path), methods, tuple(rows))


def fmt_pct(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{100 * x:.2f} %"
