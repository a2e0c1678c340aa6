"""Decay branches on an executor: the run-tree entry point of scale-out.

:func:`run_requests` is :func:`riverbed.orchestration.fork.run_requests` with an ``executor``: without
one it trains in this process; with one (a backend name "local" | "ray" | "slurm", an
ExecutorConfig or an Executor) each validated branch becomes one job that reads its fork
checkpoint and writes only its own branch directory (riverbed.executors.fanout). It lives
here, above riverbed.runs, so the run tree never imports its executors (one way down).

>>> from riverbed.runs import Run                                               # doctest: +SKIP
>>> from riverbed.runs.fork import plan_requests                                # doctest: +SKIP
>>> run = Run.open("runs/tiny")                                                 # doctest: +SKIP
>>> run_requests(run, plan_requests(run, [400, 800], "1-sqrt", "20%"), executor="local")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from riverbed.executors.fanout import fan_out
from riverbed.orchestration import fork as train_here
from riverbed.runs import fork
from riverbed.runs.manifest import BranchRecord
from riverbed.runs.run import Run


def run_requests(run: Run, requests: Sequence[fork.ForkRequest], *, executor: Any = None, wait: bool = True,
                 progress: bool = True, cfg: Any = None, data: Any = None, allow_resume: bool = True,
                 skip_finished: bool = False, eval_every: int | None = None) -> list[BranchRecord]:
    """Train ``requests`` here (``executor=None``) or as jobs of ``executor`` (``wait=False``:
    return once they are queued; ``cfg`` and ``data`` are then the run's own, read by each job)."""
    if executor is None:
        return train_here.run_requests(run, requests, progress=progress, cfg=cfg, data=data, allow_resume=allow_resume,
                                       skip_finished=skip_finished, eval_every=eval_every)
    if eval_every is not None:
        fork.branch_eval_every(1, eval_every)  # a bad value is refused before anything is queued
    done, checked = fork.pending_requests(run, requests, allow_resume=allow_resume, skip_finished=skip_finished)
    return done + fan_out(run, checked, executor, eval_every=eval_every, progress=progress, wait=wait)
