"""The report's predictor section: the loss law fitted to the run, its predictions of each decay branch
against the trained ones, and the leave-one-out verdict.

The law is fitted to the main branch and every finished decay branch (``riverbed predict fit RUN
--calibrate main BRANCH...``), with its diagnostics; its parameters are shown with their intervals and,
when it is unreliable, the reasons. Each decay branch is then predicted out of sample, as
``riverbed predict check RUN --law mpl --no-merge`` does: by a fit on the main branch and the *other*
decay branches, with a 95 % linearised interval, beside the trained loss; a fold whose fit is unreliable
shows why instead of a number. The section ends with that check's verdict (against the undecayed main
branch; the merge baseline evaluates checkpoints, which a report does not).

>>> section = predictor_section("runs/tiny")              # doctest: +SKIP
>>> section.fit.diagnostics.verdict, section.verdict       # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from riverbed.checkpoints import layout
from riverbed.predict.check import loo_check
from riverbed.predict.curves import PredictError
from riverbed.predict.fit import LawFit
from riverbed.predict.runs import finished_decays, fit_run
from riverbed.runs.run import Run


@dataclass(frozen=True)
class BranchPrediction:
    """One decay branch predicted by a fit on the main branch and the other decay branches."""

    branch: str
    trained: float
    predicted: float | None
    lo: float | None
    hi: float | None
    note: str = ""
    """Why there is no prediction (an unreliable fold fit), or why it was forced."""


@dataclass(frozen=True)
class PredictorSection:
    law: str
    fit: LawFit | None
    note: str
    """What the law was fitted on and its verdict, or why there is no fit."""
    rows: tuple[BranchPrediction, ...]
    verdict: str


def predictor_section(run: Run | str | Path, law: str = "mpl") -> PredictorSection:
    """Fit, leave-one-out predictions and the verdict for the run (never raises on an unsuitable run)."""
    run = run if isinstance(run, Run) else Run.open(run)
    decays = [b.name for b in finished_decays(run) if b.final.eval_loss is not None]
    if not decays:
        return PredictorSection(law, None, "no finished decay branch: the law needs one to calibrate on", (), "")
    try:
        fit = fit_run(run, law, [layout.MAIN, *decays], force=True)
        d = fit.diagnostics
        note = f"fitted on {', '.join([layout.MAIN, *decays])}: " + (d.summary() if d is not None else "no diagnostics")
    except PredictError as exc:
        fit, note = None, f"no fit: {exc}"
    try:
        report = loo_check(run, laws=(law,), merge=False)
    except PredictError as exc:
        return PredictorSection(law, fit, note, (), f"no leave-one-out check: {exc}")
    rows = []
    for b in report.branches:
        band = b.intervals.get(law)
        rows.append(BranchPrediction(b.branch, b.loss, b.estimates.get(law), band[0] if band else None,
                                     band[1] if band else None, b.refused.get(law, "")))
    return PredictorSection(law, fit, note, tuple(rows), report.verdict()["statement"])
