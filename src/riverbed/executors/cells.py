"""Grid cells as executor jobs: independent function calls (a claims seed, ...) that answer JSON.

A cell writes only under its own directory (named in its payload) and returns its numbers;
the caller assembles the grid from the answers, in task order.

>>> from riverbed.executors.base import Task                                     # doctest: +SKIP
>>> run_cells("local", [Task("claims-seed", {...}, "seed 0"), ...], jobs=2)       # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from riverbed.executors import as_executor
from riverbed.executors.base import JobError, Task
from riverbed.io.progress import Progress

POLL_S = 0.2


def run_cells(executor: Any, tasks: Sequence[Task], *, folder: str | Path, progress: bool = True,
              on_result: Callable[[int, Any], None] | None = None) -> list[Any]:
    """Run every task as a job of ``executor`` and return their results in order.

    ``folder``: where a backend that keeps job files (slurm) writes them. Waits for all jobs
    (a progress bar over the cells); :class:`JobError` names each cell whose job failed or
    died, and its job, once every job ended. ``on_result(i, result)`` hears each task's result as its
    job ends (so that a caller can keep it, whatever becomes of the others).
    """
    ex, owned = as_executor(executor, folder=folder)
    try:
        handles = ex.submit(list(tasks))
        pending = set(range(len(handles)))
        with Progress(enabled=progress) as bar:
            task = bar.add("jobs", len(handles), unit="jobs")
            while pending:
                for i in sorted(pending):
                    if handles[i].done():
                        pending.discard(i)
                        bar.advance(task)
                        out = handles[i].outcome()
                        if on_result is not None and out.ok:
                            on_result(i, out.result)
                if pending:
                    time.sleep(POLL_S)
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

