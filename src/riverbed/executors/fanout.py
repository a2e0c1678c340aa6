"""Decay branches as executor jobs: queue them in the run tree, submit, watch, report.

The order of events keeps ``run.json`` the one source of truth and a bad request traceless:

1. every request is validated (by :func:`riverbed.runs.fork.validate`, before this module)
   and every branch to resume must be free (no live writer, not queued elsewhere);
2. the branches are recorded ``queued`` in one locked rewrite of ``run.json`` -- and put back
   as they were if the submission fails;
3. each job, holding the branch's writer lock, records itself as the branch's job and trains
   it (``running``, then ``finished`` or ``failed``) exactly as the sequential path does;
4. the submitter watches the jobs and the manifest (a progress bar over the branches); a job
   that died without a word is recorded ``failed`` with its job id and how it died. Its
   checkpoints stay: running the same command again resumes the branch from the newest one.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from riverbed.checkpoints import layout
from riverbed.errors import ConfigError, RunError
from riverbed.executors import as_executor
from riverbed.executors.base import Executor, Handle, JobError, Outcome, Task
from riverbed.io.lock import read_holder
from riverbed.io.progress import Progress
from riverbed.runs.manifest import BranchRecord, locked, read_manifest, write_manifest
from riverbed.runs.run import Run, _pid_alive

#: Seconds between looks at the jobs and at run.json while waiting.
POLL_S = 0.2


def fan_out(run: Run, checked: Sequence[tuple[Any, Any, bool]], executor: Any, *, eval_every: int | None = None,
            progress: bool = True, wait: bool = True) -> list[BranchRecord]:
    """Train validated (request, schedule, resume) triples as jobs of ``executor``; see the module doc.

    Returns the branch records as the jobs left them (``queued`` ones when ``wait=False``);
    :class:`JobError` names every branch whose job failed or died (its records attached).
    """
    if not checked:
        return []
    checked = sorted(checked, key=lambda c: (c[0].from_step, c[0].length))
    ex, owned = as_executor(executor, folder=layout.jobs_dir(run.path, "slurm"))
    try:
        if not wait and not ex.detached:
            raise ConfigError(f"--executor {ex.name}: its jobs end with this process, so it always waits for them "
                              "(only slurm jobs can be queued and left)")
        from riverbed.runs.config_io import load_run_config

        load_run_config(run.path)  # a broken config.toml is the caller's error, before anything is queued
        check_free(run, [req.name for req, _s, _r in checked])
        tasks = [branch_task(run, req, ex, eval_every) for req, _s, _r in checked]
        return submit_and_watch(run, ex, tasks, checked, wait=wait, progress=progress)
    finally:
        if owned:
            ex.close()  # a local pool or Ray cluster of ours ends here; queued Slurm jobs stay queued


def submit_and_watch(run: Run, ex: Any, tasks: Sequence[Any], queued: Sequence[tuple[Any, Any, bool]], *,
                     wait: bool, progress: bool) -> list[BranchRecord]:
    """Mark the branches queued in run.json, submit their tasks (undoing the marks if that fails), record the
    job ids, and watch them to the end unless ``wait`` is false (then: the queued records)."""
    before = queue(run, queued, submitter_pid=None if ex.detached else os.getpid())
    try:
        handles = ex.submit(tasks)
    except BaseException:
        unqueue(run, before)
        raise
    for h in handles:  # job ids are known once submitted; a job that already started wrote its own
        run.update_branch(h.task.label, lambda b, j=h.job: replace(b, job=j) if b.job is None else b)
    if not wait:
        return [run.branch(t.label) for t in tasks]
    return watch_branches(run, handles, progress=progress)


def check_free(run: Run, names: Sequence[str]) -> None:
    """Refuse a branch that another process writes or that is queued as a live job."""
    from riverbed.errors import LockedError

    branches = run.manifest.branches
    for name in names:
        b = branches.get(name)
        if b is None:
            continue
        lock = layout.writer_lock_path(run.path, name)
        holder = read_holder(lock) if lock.is_file() else {}
        if holder and _pid_alive(holder.get("pid"), holder.get("host")):
            raise LockedError(f"branch {name!r} of {run.path} is being written by another process (pid {holder.get('pid')} "
                              f"on {holder.get('host')}, since {holder.get('started')}; lock {lock}); wait for it to "
                              "finish or stop it, then run this again")
        if b.status == "queued" and (b.pid is None or _pid_alive(b.pid, b.host)):
            job = f"job {b.job.backend}:{b.job.id}" if b.job else "a job"
            raise RunError(f"branch {name!r} of {run.path} is already queued as {job}; wait for it "
                           f"(riverbed branch {run.path} --wait) or cancel that job first")


def branch_task(run: Run, req: Any, ex: Executor, eval_every: int | None) -> Task:
    payload = {"run": str(run.path.resolve()), "name": req.name, "from_step": req.from_step, "length": req.length,
               "shape": req.shape, "min_ratio": req.min_ratio, "extra": [list(kv) for kv in req.extra],
               "eval_every": eval_every, "backend": ex.name, "gpus": ex.config.gpus_per_job,
               "threads": ex.config.threads}
    return Task("branch", payload, req.name)


def queue(run: Run, checked: Sequence[tuple[Any, Any, bool]], *, submitter_pid: int | None) -> dict[str, BranchRecord | None]:
    """Record every branch ``queued`` in one locked rewrite; returns the records as they were."""
    from riverbed.runs.fork import fork_record

    fresh = {req.name: fork_record(run, req, schedule) for req, schedule, _r in checked}
    mark = {"status": "queued", "pid": submitter_pid, "host": socket.gethostname(), "error": None, "job": None}
    with locked(run.path):
        path = run.path / layout.MANIFEST
        m = read_manifest(path)
        before = {name: m.branches.get(name) for name in fresh}
        for name, rec in fresh.items():
            old = m.branches.get(name)
            m = m.with_branch(replace(old if old is not None else rec, **mark))
        write_manifest(path, m)
    return before


def unqueue(run: Run, before: dict[str, BranchRecord | None]) -> None:
    """Put the records back as they were before :func:`queue` (the submission failed)."""
    with locked(run.path):
        path = run.path / layout.MANIFEST
        m = read_manifest(path)
        branches = dict(m.branches)
        for name, old in before.items():
            if old is None:
                branches.pop(name, None)
            else:
                branches[name] = old
        write_manifest(path, replace(m, branches=branches))


def record_failure(run: Run, h: Handle, out: Outcome) -> str:
    """One line naming the branch and its job; a job that died is recorded ``failed`` here."""
    name, job = h.task.label, f"{h.job.backend}:{h.job.id}"
    if out.error_type == "LockedError":  # the branch is another writer's: its record is not ours to change
        return f"branch {name!r} (job {job}): {out.error}"
    died = out.error_type == "died"
    error = f"job {job} died: {out.error}" if died else out.error

    def fail(b: BranchRecord) -> BranchRecord:
        if b.status == "finished" or (b.status == "failed" and b.error):
            return b  # the job recorded its own end (Run.training); keep its message
        return replace(b, status="failed", error=error, pid=None)

    rec = run.update_branch(name, fail)
    return f"branch {name!r} (job {job}) {'died' if died else 'failed'}: {rec.error or out.error}"


def watch_branches(run: Run, handles: Sequence[Handle], *, progress: bool = True) -> list[BranchRecord]:
    """Wait for every job, a progress bar over the branches; JobError names the failed ones."""
    pending = {h.task.label: h for h in handles}
    failures: list[str] = []
    with BranchBoard(run, list(pending), enabled=progress) as board:
        while pending:
            for name, h in list(pending.items()):
                if h.done():
                    del pending[name]
                    out = h.outcome()
                    if not out.ok:
                        failures.append(record_failure(run, h, out))
            board.refresh()
            if pending:
                time.sleep(POLL_S)
    records = [run.branch(h.task.label) for h in handles]
    if failures:
        raise JobError(failed_message(failures, len(handles)), records)
    return records


def wait_for_run(run: Run, *, progress: bool = True, timeout_s: float | None = None) -> list[BranchRecord]:
    """Wait until no branch of ``run`` is queued or running (jobs submitted by another process:
    ``riverbed branch RUN --wait``). Watches ``run.json`` only; a local job whose process is
    gone is seen as such (its branch stops). Returns the branches it waited for."""
    names = [b.name for b in run.branches if b.status in ("queued", "running")]
    start = time.monotonic()
    with BranchBoard(run, names, enabled=progress) as board:
        while True:
            branches = Run(run.path).manifest.branches  # Run() reconciles: dead local jobs stop
            _fail_dead_slurm_jobs(run, [branches[n] for n in names if n in branches])
            if not any(branches[n].status in ("queued", "running") for n in names if n in branches):
                break
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                busy = [n for n in names if n in branches and branches[n].status in ("queued", "running")]
                raise RunError(f"--wait: branches {', '.join(busy)} still queued or running after {timeout_s:g} s")
            board.refresh()
            time.sleep(POLL_S)
        board.refresh()
    records = [b for n, b in Run(run.path).manifest.branches.items() if n in names]
    failed = [f"branch {b.name!r}" + (f" (job {b.job.backend}:{b.job.id})" if b.job else "") + f": {b.error or b.status}"
              for b in records if b.status == "failed"]
    if failed:
        raise JobError(failed_message(failed, len(names)), records)
    return records


def _fail_dead_slurm_jobs(run: Run, records: Sequence[BranchRecord]) -> None:
    """Record ``failed`` a queued or running branch whose Slurm job the scheduler ended (out of
    memory, time limit, cancelled): such a job never writes its own end into run.json."""
    # A running job on this host is judged by its pid (Run's reconcile); elsewhere only Slurm knows.
    live = [b for b in records if b.job is not None and b.job.backend == "slurm"
            and (b.status == "queued" or (b.status == "running" and b.host != socket.gethostname()))]
    if not live:
        return
    from riverbed.executors.slurm import dead_state  # submitit: only when Slurm jobs are waited for

    for b in live:
        state = dead_state(layout.jobs_dir(run.path, "slurm"), b.job.id)
        if state is not None:
            run.update_branch(b.name, lambda r, s=state: r if r.status not in ("queued", "running") else
                              replace(r, status="failed", error=f"job slurm:{r.job.id} died: Slurm state {s}", pid=None))


def failed_message(failures: Sequence[str], n: int) -> str:
    return (f"{len(failures)} of {n} branch job(s) did not finish: " + "; ".join(failures)
            + ". The others are recorded; run the same command again to resume these from their newest checkpoints.")


class BranchBoard:
    """Progress per branch (steps of its decay) and over the branches, read from run.json
    (riverbed.io.progress: bars on a terminal, plain lines in a log)."""

    def __init__(self, run: Run, names: Sequence[str], *, enabled: bool = True) -> None:
        self.run, self.names, self.enabled = run, list(names), enabled and bool(names)
        self._progress = Progress(enabled=self.enabled)
        self._tasks: dict[str, int] = {}
        self._all = -1

    def __enter__(self) -> BranchBoard:
        if not self.enabled:
            return self
        self._progress.__enter__()
        self._all = self._progress.add("branches", len(self.names), unit="branches")
        for n in self.names:
            self._tasks[n] = self._progress.add(f"  {n}", None, unit="steps", info="queued")
        self.refresh()
        return self

    def refresh(self) -> None:
        if not self.enabled:
            return
        branches = self.run.manifest.branches
        ended = 0
        for n, task in self._tasks.items():
            b = branches.get(n)
            if b is None:
                continue
            total = _length(b)
            done = (b.last.step - b.fork.step) if b.last is not None and b.fork is not None else 0
            state = b.status + (f" · {b.job.backend}:{b.job.id[:16]}" if b.job else "") + (f" on {b.host}" if b.status == "running" and b.host else "")
            self._progress.update(task, total=total, completed=max(0, done), info=state)
            ended += b.status in ("finished", "failed", "stopped")
        self._progress.update(self._all, completed=ended)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.refresh()
            self._progress.__exit__(None, None, None)


def _length(b: BranchRecord) -> int | None:
    """A decay branch's length in steps, from its schedule spec (None when it has none)."""
    n = (b.schedule or {}).get("length") or (b.schedule or {}).get("decay_steps")
    return int(n) if isinstance(n, (int, float)) else None
