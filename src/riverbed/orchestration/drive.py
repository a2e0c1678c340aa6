"""Driving the root branch of a run: WSD main branches, WSD-S, cyclic-cosine and cosine runs.

The root branch (named ``main``) is trained in segments that end at *stops*; each segment
ends with a held-out evaluation and a checkpoint (``train_branch`` always saves at its end),
and the next segment resumes exactly from it (same weights, AdamW state, RNG, data
position), so splitting a run into segments does not change it.

* WSD-S (``[schedule] type = "wsds"``): the stops are the budgets. The checkpoint at budget
  ``T_k`` is taken right after the last decay step (at the minimum LR), so it is the finished
  model for that budget and is recorded as a milestone (FinishedPoint kind "wsds"); the next
  segment resumes from those decayed weights and the schedule jumps straight back to the peak
  with the optimizer state carried over -- no re-warmup (background: WSD-S).
* Cyclic cosine (``type = "cyclic-cosine"``): the stops are the cycle ends (kind "cyclic").
* Cosine (``type = "cosine"``) and WSD (``type = "wsd"``): one finished model at the end
  (kind "cosine" / "main").
* A plan's fork points are extra stops, so a checkpoint exists at every step a decay branch
  of the plan forks from, whatever ``train.ckpt_every`` is.

>>> from riverbed.orchestration.drive import train_main                    # doctest: +SKIP
>>> train_main(cfg, "runs/wsds", Run.create("runs/wsds", cfg))    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from riverbed.checkpoints import layout
from riverbed.config import RunConfig
from riverbed.data import load_dataset
from riverbed.data.dataset import TokenData
from riverbed.runs.manifest import BranchRecord, Point
from riverbed.runs.run import Run, point_from_state, read_state
from riverbed.schedules import schedule_to_spec
from riverbed.training.callbacks import Callback
from riverbed.training.manifest_callback import ManifestCallback

if TYPE_CHECKING:  # the trainer's result type; importing the loop loads torch, which importing this module must not
    from riverbed.training.loop import BranchResult

# Schedule class name -> kind of the root branch (literal on purpose).
ROOT_KINDS: dict[str, str] = {"WSDS": "wsds", "CyclicCosine": "cyclic", "Cosine": "cosine"}


def root_kind(schedule: Any) -> str:
    return ROOT_KINDS.get(type(schedule).__name__, "main")


def milestones(schedule: Any) -> list[int]:
    """Steps whose checkpoint is a finished model of a multi-budget run (WSD-S, cyclic)."""
    if root_kind(schedule) in ("wsds", "cyclic"):
        return [int(b) for b in schedule.budgets]
    return []


def stops(schedule: Any, start: int, until: int | None, extra: Sequence[int] = ()) -> list[int]:
    """The segment ends after ``start``: milestones and extra stops before ``until``, then ``until``.

    >>> from riverbed.schedules import WSDS
    >>> stops(WSDS(budgets=(4, 8, 12), warmup=0, decays=(1, 1, 1)), 4, 10, extra=[6])
    [6, 8, 10]
    """
    points = {s for s in (*milestones(schedule), *extra) if s > start and (until is None or s < until)}
    out = sorted(points)
    if until is None or until > start:
        out.append(until)  # type: ignore[arg-type]
    return out


def _last_step(run_dir: Path) -> int:
    refs = layout.list_checkpoints(run_dir, layout.MAIN)
    return refs[-1].step if refs else 0


def _point(res: Any, run_dir: Path) -> Point:
    rel = None
    if res.checkpoint is not None:
        try:
            rel = str(Path(res.checkpoint).relative_to(run_dir))
        except ValueError:
            rel = str(res.checkpoint)
    return Point(res.step, res.tokens, res.flops, res.last_eval_loss, rel)


def train_main(
    cfg: RunConfig,
    run_dir: str | Path,
    run: Run | None,
    *,
    until_step: int | None = None,
    extra_stops: Sequence[int] = (),
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    data: TokenData | None = None,
) -> BranchResult:
    """Train the root branch to ``until_step`` (default: the schedule's end, else indefinitely).

    ``run`` is the Run to record into (None on non-zero DDP ranks: they train the same
    segments and record nothing); each checkpoint is recorded as main's progress. Records the branch kind and schedule spec, each milestone
    reached, and marks the branch finished when its schedule ended. Returns the last
    ``BranchResult``.
    """
    from riverbed.training import train_branch  # lazy: loads torch, which importing this module must not

    run_dir = Path(run_dir)
    schedule = cfg.schedule_object()
    total = schedule.total_steps
    until = until_step if until_step is not None else (cfg.train.total_steps or total)
    kind = root_kind(schedule)
    spec = schedule_to_spec(schedule)
    if run is not None:
        if layout.MAIN not in run.manifest.branches:
            run.add_branch(BranchRecord(layout.MAIN, kind, spec, status="stopped"))
        run.update_branch(layout.MAIN, lambda b: replace(b, kind=kind, schedule=spec))
    if data is None:
        data = load_dataset(cfg.data)
    mark = set(milestones(schedule))
    start = _last_step(run_dir)
    if run is not None:
        _recover_milestones(run, run_dir, mark, start)
    cbs = tuple(callbacks)
    if cfg.forecast is not None:
        from riverbed.orchestration.forecast_monitor import ForecastMonitor  # lazy: loads scipy, only with [forecast]

        if not any(isinstance(cb, ForecastMonitor) for cb in cbs):
            cbs = (*cbs, ForecastMonitor(cfg.forecast))
    if run is not None:  # record each checkpoint as main's progress in run.json

        cbs = (ManifestCallback(run, layout.MAIN), *cbs)
    res = None
    for stop in stops(schedule, start, until, extra_stops) or [until]:
        res = train_branch(cfg, run_dir, layout.MAIN, schedule, until_step=stop, callbacks=cbs,
                           progress=progress, data=data)
        if res.stopped is not None:
            break
        if run is not None and res.step in mark:
            run.add_milestone(layout.MAIN, _point(res, run_dir))
    if run is not None and res is not None and res.stopped is None and total is not None and res.step >= total:
        run.finish_branch(layout.MAIN, _point(res, run_dir))
    return res


def _recover_milestones(run: Run, run_dir: Path, mark: set[int], start: int) -> None:
    """A crash between a milestone's checkpoint and its manifest entry: record it from disk."""
    have = {p.step for p in run.branch(layout.MAIN).milestones}
    for step in sorted(m for m in mark if m <= start and m not in have):
        path = layout.checkpoint_dir(run_dir, layout.MAIN, step)
        if (path / layout.STATE_FILE).is_file():
            run.add_milestone(layout.MAIN, point_from_state(read_state(path), str(path.relative_to(run_dir))))
