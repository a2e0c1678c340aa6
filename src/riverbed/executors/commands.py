"""Decay branches trained by the user's command, here or as executor jobs: :func:`run_command_branches`.

Without an executor each branch runs in this process, one after the other
(riverbed.orchestration.command_branch); with one, each branch is one job that runs CMD and
ingests what it wrote (its task kind names ``riverbed.orchestration.command_branch:command_job``).

The same order of events as native branch jobs (riverbed.executors.fanout): the branches are
recorded ``queued`` in one locked rewrite (and put back if the submission fails), each job holds
the branch's writer lock while it runs CMD (riverbed.orchestration.command_branch), and the
submitter watches the jobs and run.json; a job that died is a failed branch naming its job.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from riverbed.checkpoints import layout
from riverbed.errors import ConfigError
from riverbed.executors import as_executor
from riverbed.executors.base import JobError, Task
from riverbed.executors.fanout import BranchBoard, check_free, submit_and_watch
from riverbed.orchestration.command_branch import CommandFailed, check_command, train_command_branch, validate
from riverbed.runs.fork import ForkRequest
from riverbed.runs.manifest import BranchRecord
from riverbed.runs.run import Run

JOB_KIND = "riverbed.orchestration.command_branch:command_job"


def command_task(run: Run, req: Any, command: str, backend: str) -> Task:
    payload = {"run": str(run.path.resolve()), "name": req.name, "from_step": req.from_step, "length": req.length,
               "shape": req.shape, "min_ratio": req.min_ratio, "extra": [list(kv) for kv in req.extra],
               "command": command, "backend": backend, "cwd": os.getcwd()}
    return Task(JOB_KIND, payload, req.name)


def run_command_branches(run: Run, requests: Sequence[Any], command: str, *, executor: Any = None,
                         wait: bool = True, progress: bool = True) -> list[BranchRecord]:
    """Validate every request (riverbed.runs.fork.ForkRequest), then run CMD for each, here
    (``executor=None``) or as jobs of ``executor``; JobError names the failed branches."""
    check_command(command)
    checked = validate(run, requests)
    if executor is None:
        return run_here(run, checked, command, progress=progress)
    return fan_out_commands(run, checked, command, executor, wait=wait, progress=progress)


def fan_out_commands(run: Run, checked: Sequence[tuple[Any, Any]], command: str, executor: Any, *,
                     wait: bool = True, progress: bool = True) -> list[BranchRecord]:
    """Run CMD for each validated (request, schedule) as a job of ``executor``."""
    if not checked:
        return []
    ex, owned = as_executor(executor, folder=layout.jobs_dir(run.path, "slurm"))
    try:
        if not wait and not ex.detached:
            raise ConfigError(f"--executor {ex.name}: its jobs end with this process, so it always waits for them "
                              "(only slurm jobs can be queued and left)")
        check_free(run, [req.name for req, _s in checked])
        tasks = [command_task(run, req, command, ex.name) for req, _s in checked]
        return submit_and_watch(run, ex, tasks, [(req, s, False) for req, s in checked], wait=wait, progress=progress)
    finally:
        if owned:
            ex.close()


def run_here(run: Run, checked: Sequence[tuple[ForkRequest, Any]], command: str, *, progress: bool = True) -> list[BranchRecord]:
    """Run CMD for each validated request in this process, oldest fork first; a failed branch is
    recorded and named in the JobError raised after the others ran."""
    records, failures = [], []
    todo = sorted(checked, key=lambda c: (c[0].from_step, c[0].length))
    with BranchBoard(run, [req.name for req, _s in todo], enabled=progress) as board:
        for req, schedule in todo:
            try:
                records.append(train_command_branch(run, req, schedule, command))
            except CommandFailed as exc:
                records.append(run.branch(req.name))
                failures.append(f"branch {req.name!r}: {exc}")
            board.refresh()
    if failures:
        raise JobError(f"{len(failures)} of {len(checked)} command branch(es) failed: " + "; ".join(failures), records)
    return records
