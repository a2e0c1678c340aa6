"""What a report shows, read from a run directory: curves, decayed points, events, accounting, fit.

Everything here is read-only on the run (``Run.open`` reconciles the manifest with the disk, as
``riverbed ls`` does) and free of matplotlib, so the HTML and the figures take plain values.

>>> data = collect_run("runs/tiny")                        # doctest: +SKIP
>>> [c.name for c in data.curves], len(data.points)       # doctest: +SKIP
"""

from __future__ import annotations

import platform
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy

from riverbed.version import __version__
from riverbed.checkpoints import layout
from riverbed.errors import RiverbedError
from riverbed.reports.run_plots import Curves, run_curves
from riverbed.runs.accounting import Accounting
from riverbed.runs.manifest import Point
from riverbed.runs.run import FinishedPoint, Run
from riverbed.runs.view import accounting
from riverbed.scaling import fit_law
from riverbed.scaling.points import Points
from riverbed.runs.metrics import read_metrics

#: Finished points a run needs before the report fits a law to them. The one-size ``data`` law
#: L(D) = E + B/D^beta has 3 parameters; 4 points leave one residual degree of freedom. The demo
#: makes 4 budgets: its report fits them and shows how wide the bootstrap intervals of so few points
#: are (with the fit's "few degrees of freedom" note) rather than no fit at all; fork more to narrow them.
MIN_FIT_POINTS = 4
#: Bootstrap resamples of the report's fit (a few seconds at most for a handful of points).
FIT_BOOTSTRAP = 200


@dataclass(frozen=True)
class Milestone:
    """A WSD-S / cyclic decayed checkpoint: the finished model of one budget inside one branch."""

    branch: str
    kind: str
    point: Point


@dataclass(frozen=True)
class Event:
    """A recorded event of a branch (spike-guard detections, restores, quarantines, stops)."""

    branch: str
    step: int | None
    kind: str
    details: dict[str, Any]


@dataclass(frozen=True)
class RunData:
    """One run directory, read for a report."""

    path: Path
    label: str
    config: dict[str, Any]
    model: dict[str, Any]
    branches: tuple[Any, ...]
    """The manifest's BranchRecords."""
    curves: tuple[Curves, ...]
    milestones: tuple[Milestone, ...]
    points: tuple[FinishedPoint, ...]
    accounting: Accounting
    events: tuple[Event, ...]
    fit: Any | None
    """A ``riverbed.scaling.FitResult`` of the ``data`` law, or None (see ``fit_note``)."""
    fit_note: str
    software: dict[str, str] = field(default_factory=dict)
    """Versions of the software that created the run (run.json; empty for older runs)."""


def _events(run: Run) -> list[Event]:
    out: list[Event] = []
    for b in run.branches:
        recorded = [dict(e) for e in b.events]
        if not recorded:
            # A guard that could not write the manifest still logged its events to metrics.jsonl.
            recorded = [r for r in read_metrics(layout.metrics_path(run.path, b.name))
                        if r.get("kind") == "event" and r.get("source") == "guard"]
        for e in recorded:
            step = e.get("step")
            kind = str(e.get("event") or e.get("type") or "?")
            details = {k: v for k, v in e.items() if k not in ("step", "event", "type", "kind")}
            out.append(Event(b.name, step if isinstance(step, int) else None, kind, details))
    return out


def _fit(points: list[FinishedPoint]) -> tuple[Any | None, str]:
    usable = [p for p in points if p.loss is not None and p.tokens > 0]
    if len(usable) < MIN_FIT_POINTS:
        return None, (f"no scaling fit: the run has {len(usable)} finished point(s), a fit of "
                      f"L(D) = E + B/D^beta needs at least {MIN_FIT_POINTS} (fork more decay branches)")
    if len({p.tokens for p in usable}) < 3:
        return None, "no scaling fit: the finished points sit at fewer than 3 distinct token counts"
    pts = Points.from_arrays([p.n_params for p in usable], [p.tokens for p in usable], [p.loss for p in usable],
                             labels=[f"{p.branch}@{p.tokens}" for p in usable], kinds=[p.kind for p in usable])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the fit keeps its design notes in fit.warnings; the report shows them
            fit = fit_law(pts, "data", bootstrap=FIT_BOOTSTRAP, seed=0)
    except RiverbedError as exc:
        return None, f"no scaling fit: {exc}"
    return fit, f"L(D) = E + B/D^beta fitted to {len(usable)} finished points, {FIT_BOOTSTRAP} bootstrap resamples"


def collect_run(path: str | Path, *, label: str | None = None, fit: bool = True) -> RunData:
    """Read everything a report shows from the run directory ``path``."""
    run = Run.open(path)
    m = run.manifest
    milestones = [Milestone(b.name, b.kind, ms) for b in run.branches for ms in b.milestones]
    points = run.finished_points()
    result, note = _fit(points) if fit else (None, "no scaling fit (not asked for)")
    return RunData(
        path=run.path,
        label=label or run.path.name,
        config=dict(m.config),
        model=dict(m.model),
        branches=tuple(run.branches),
        curves=tuple(run_curves(run.path)),
        milestones=tuple(milestones),
        points=tuple(points),
        accounting=accounting(run),
        events=tuple(_events(run)),
        fit=result,
        fit_note=note,
        software=dict(m.software),
    )


def software_versions() -> dict[str, str]:
    """Versions of the software writing the report (the run's own are in run.json ``software``)."""
    import matplotlib  # lazy: loads matplotlib, which only drawing needs

    versions = {"riverbed": __version__, "python": sys.version.split()[0], "numpy": numpy.__version__,
                "matplotlib": matplotlib.__version__, "platform": platform.platform()}
    try:  # torch is heavy and not needed to read a run; report it only when it is importable
        import torch  # lazy: optional dependency (ImportError handled here)

        versions["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        versions["torch"] = "not installed"
    return versions
