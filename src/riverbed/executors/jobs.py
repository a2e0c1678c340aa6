"""What a job process runs: ``entry(kind, payload)`` -> a JSON answer (riverbed.executors.base.Outcome).

The table of job kinds is literal; a caller above the executors names its own job function
as ``"module:function"`` (a riverbed module), e.g. ``riverbed.claims.runner:claims_job``, so
this package never imports its callers. Each job calls the code a single process would run --
a decay branch is :func:`riverbed.orchestration.fork.train_fork`, a claims job is
:func:`riverbed.claims.runner.run_job` -- so a job trains exactly what the sequential
path trains (same config, seed, data order: the same weights).

A branch job holds the branch's writer lock for its whole life and, holding it, records
itself as the branch's job: a second executor writing the same branch gets
:class:`~riverbed.errors.LockedError` before touching anything, and its job answers that error.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import sys
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from riverbed.errors import RiverbedError
from riverbed.runs.manifest import JobInfo, utc_now


def current_job_id(backend: str, given: str | None) -> str:
    """This process's job id on ``backend`` (as the submitter recorded it)."""
    if given:
        return given
    if backend == "ray":
        import ray  # only inside a Ray worker, where it is installed

        return ray.get_runtime_context().get_task_id() or f"pid-{os.getpid()}"
    if backend == "slurm":
        import submitit  # only inside a submitit job, where it is installed

        return str(submitit.JobEnvironment().job_id)
    return f"pid-{os.getpid()}"


def branch_job(p: dict[str, Any]) -> dict[str, Any]:
    """Train one decay branch of a run to its end (resuming its newest checkpoint)."""
    from riverbed.checkpoints.layout import writer_lock
    from riverbed.runs import Run
    from riverbed.runs.config_io import load_run_config
    from riverbed.runs.fork import ForkRequest, branch_config, decay_schedule
    from riverbed.orchestration.fork import train_fork

    run = Run.open(p["run"])
    req = ForkRequest(p["name"], int(p["from_step"]), int(p["length"]), p["shape"], p.get("min_ratio"),
                      tuple((k, v) for k, v in p.get("extra", [])))
    job_id = current_job_id(p["backend"], p.get("job_id"))
    with writer_lock(run.path, req.name):  # LockedError: another writer has this branch
        # Holding the lock, this job is the branch's writer: record it as the branch's job.
        run.update_branch(req.name, lambda b: replace(b, job=JobInfo(p["backend"], job_id,
                                                                     b.job.submitted if b.job else utc_now())))
        cfg = branch_config(load_run_config(run.path), req, p.get("eval_every"))
        if p.get("gpus", 0):
            cfg = replace(cfg, train=replace(cfg.train, device="cuda"))
        rec = train_fork(run, req, decay_schedule(run, req), cfg=cfg, progress=False)
    last = rec.last
    return {"branch": rec.name, "status": rec.status, "step": last.step if last else None,
            "eval_loss": last.eval_loss if last else None, "host": socket.gethostname(), "pid": os.getpid()}


#: Job kinds, literal: the name a Task carries -> the function its job runs.
JOBS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "branch": branch_job,
}


def job_function(kind: str) -> Callable[[dict[str, Any]], Any] | None:
    """The function a job of ``kind`` runs: a name in :data:`JOBS`, or ``"riverbed.<module>:<function>"``
    that the submitter named (None if it names nothing callable)."""
    if kind in JOBS:
        return JOBS[kind]
    module, sep, name = kind.partition(":")
    if not (sep and module.startswith("riverbed.") and name.isidentifier()):
        return None
    try:
        fn = getattr(importlib.import_module(module), name, None)  # lazy: the caller's module, named by the caller
    except ModuleNotFoundError:
        return None
    return fn if callable(fn) else None


def entry(kind: str, payload: str) -> str:
    """Run one job; always answers JSON ``{"ok", "result" | "error", "error_type"}``.

    A riverbed error (bad input, another writer) answers its message; anything else is a bug
    whose traceback goes to the job's log (stderr) and whose one line goes to the submitter.
    """
    fn = job_function(kind)
    if fn is None:
        return json.dumps({"ok": False, "error": f"unknown job kind {kind!r}", "error_type": "ConfigError"})
    try:
        threads = json.loads(payload).get("threads")
        if threads:
            import torch  # every job kind trains

            torch.set_num_threads(int(threads))
        result = fn(json.loads(payload))
        return json.dumps({"ok": True, "result": result}, allow_nan=False)
    except RiverbedError as exc:
        return json.dumps({"ok": False, "error": str(exc), "error_type": type(exc).__name__})
    except Exception as exc:  # noqa: BLE001 - reported to the submitter, traceback kept in the log
        traceback.print_exc(file=sys.stderr)
        return json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}", "error_type": type(exc).__name__})
