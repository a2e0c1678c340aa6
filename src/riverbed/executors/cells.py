"""Grid cells as executor jobs: independent function calls (a claims seed, ...) that answer JSON.

A cell writes only under its own directory (named in its payload) and returns its numbers;
the caller assembles the grid from the answers, in task order.

>>> from riverbed.executors.base import Task                                     # doctest: +SKIP
>>> run_cells("local", [Task("claims-seed", {...}, "seed 0"), ...], jobs=2)       # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from riverbed.executors import as_executor
from riverbed.executors.base import JobError, Task

POLL_S = 0.2


def run_cells(executor: Any, tasks: Sequence[Task], *, folder: str | Path, progress: bool = True) -> list[Any]:
    """Run every task as a job of ``executor`` and return their results in order.

    ``folder``: where a backend that keeps job files (slurm) writes them. Waits for all jobs
    (a progress bar over the cells); :class:`JobError` names each cell whose job failed or
    died, and its job, once every job ended.
    """
    ex, owned = as_executor(executor, folder=folder)
    try:
        handles = ex.submit(list(tasks))
        bar = _bar(progress, len(handles))
        pending = set(range(len(handles)))
        try:
            while pending:
                for i in sorted(pending):
                    if handles[i].done():
                        pending.discard(i)
                        if bar is not None:
                            bar[0].advance(bar[1])
                if pending:
                    time.sleep(POLL_S)
        finally:
            if bar is not None:
                bar[0].stop()
    finally:
        if owned:
            ex.close()
    failed, results = [], []
    for h in handles:
        out = h.outcome()
        if out.ok:
            results.append(out.result)
        else:
            verb = "died" if out.error_type == "died" else "failed"
            failed.append(f"{h.task.label} (job {h.job.backend}:{h.job.id}) {verb}: {out.error}")
    if failed:
        raise JobError(f"{len(failed)} of {len(handles)} job(s) did not finish: " + "; ".join(failed))
    return results


def _bar(enabled: bool, total: int) -> Any:
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    p.start()
    return p, p.add_task("[bold]jobs", total=total)
