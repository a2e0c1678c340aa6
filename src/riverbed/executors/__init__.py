"""Executors: decay branches and grid cells as independent jobs on this machine, Ray or Slurm.

Each decay branch is one job that reads its fork checkpoint and writes only its own branch
directory; the run tree (``run.json``, rewritten under its lock) stays the one source of truth:
it shows each branch ``queued`` / ``running`` (job id, host, backend) / ``finished`` /
``failed``, and a job that died is a failed branch that running the same command again resumes.

Backends (literal): ``local`` (a pool of K spawned processes), ``ray`` (Ray tasks,
``pip install 'riverbed[ray]'``), ``slurm`` (submitit, ``pip install 'riverbed[slurm]'``);
a backend's library is imported only when it is asked for.

>>> from riverbed.runs import Run                                            # doctest: +SKIP
>>> from riverbed.executors.branches import run_requests; from riverbed.runs.fork import plan_requests               # doctest: +SKIP
>>> run = Run.open("runs/x")                                                 # doctest: +SKIP
>>> reqs = plan_requests(run, [200, 400, 800], "1-sqrt", "20%")             # doctest: +SKIP
>>> run_requests(run, reqs, executor=ExecutorConfig("local", jobs=3))        # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from riverbed.errors import ConfigError
from riverbed.executors.base import BACKENDS, Executor, ExecutorConfig, Handle, JobError, Outcome, Task
from riverbed.extras import missing_extra

#: backend -> (module, class); the module is imported only when the backend is asked for.
_MODULES = {
    "local": ("riverbed.executors.local", "LocalExecutor"),
    "ray": ("riverbed.executors.ray_tasks", "RayExecutor"),
    "slurm": ("riverbed.executors.slurm", "SlurmExecutor"),
}


def get_executor(config: ExecutorConfig | str, *, folder: str | Path | None = None) -> Executor:
    """The executor of ``config`` (a backend name means its defaults). ``folder``: where a
    backend that keeps job files (slurm) writes them. A backend whose extra is not installed
    raises :class:`~riverbed.extras.MissingExtraError` naming the extra."""
    if isinstance(config, str):  # a name alone: as wide as this machine (local pool, local Ray cluster)
        config = ExecutorConfig(config, jobs=256 if config == "slurm" else (os.cpu_count() or 1))
    module_name, cls_name = _MODULES[config.backend]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        err = missing_extra(exc, f"--executor {config.backend}")
        if err is None:
            raise
        raise err from None
    cls = getattr(module, cls_name)
    if config.backend == "slurm":
        if folder is None:
            raise ConfigError("--executor slurm: a folder for the job files is needed (on a filesystem the nodes share)")
        return cls(config, folder)
    return cls(config)


def warm_up(spec: Any) -> None:
    """Start what a backend's jobs will start from, so it warms while the caller validates: for
    ``local``, the fork server importing torch (seconds) on another core while this process reads
    the run and checks the fork checkpoints. Any other backend, or none: nothing."""
    backend = spec if isinstance(spec, str) else spec.backend if isinstance(spec, ExecutorConfig) else None
    if backend == "local":
        from riverbed.executors.local import start_server  # lazy: multiprocessing's fork server, local only

        start_server()


def as_executor(spec: Any, *, folder: str | Path | None = None) -> tuple[Executor, bool]:
    """(executor, owned) from an Executor (the caller's: not closed here), an ExecutorConfig or a name."""
    if isinstance(spec, Executor):
        return spec, False
    if isinstance(spec, (ExecutorConfig, str)):
        return get_executor(spec, folder=folder), True
    raise ConfigError(f"executor {spec!r}: expected a backend name ({', '.join(BACKENDS)}), an ExecutorConfig or an Executor")


__all__ = ["BACKENDS", "Executor", "ExecutorConfig", "Handle", "JobError", "Outcome", "Task", "as_executor",
           "get_executor", "warm_up"]
