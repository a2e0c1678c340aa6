"""The scale-out flags that `riverbed branch`, `riverbed experiment` and `riverbed claims` share.

``--executor local|ray|slurm``, ``--jobs K`` (alone, K > 1 means local), ``--gpus-per-job G``
and ``--slurm-option KEY=VALUE`` become one validated
:class:`riverbed.executors.ExecutorConfig` (or None: run in this process, one after another).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from riverbed.executors.base import BACKENDS, ExecutorConfig


def add_executor_arguments(p: argparse.ArgumentParser, *, what: str) -> None:
    p.add_argument("--executor", choices=BACKENDS, default=None,
                   help=f"run each {what} as an independent job: local (a pool of --jobs processes), ray (Ray tasks, "
                        f"riverbed[ray]) or slurm (submitit, riverbed[slurm]); default: one after another in this "
                        f"process, or local when --jobs > 1")
    p.add_argument("--jobs", type=int, default=None, metavar="K",
                   help="jobs at once (local: pool size; slurm: array parallelism; ray: its cluster decides)")
    p.add_argument("--gpus-per-job", type=int, default=0, metavar="G", help="GPUs per job (0 or 1; default 0: CPU)")
    p.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a submitit parameter for --executor slurm (repeatable): slurm_partition=gpu, timeout_min=600, "
                        "cluster=local (run the jobs as local processes through submitit, no cluster)")


def _value(text: str) -> Any:
    try:
        return json.loads(text)  # 600 -> int, 1.5 -> float, true -> bool
    except json.JSONDecodeError:
        return text


def executor_from_args(args: argparse.Namespace) -> ExecutorConfig | None:
    """The ExecutorConfig the flags ask for, or None for the sequential, in-process path."""
    from riverbed.errors import ConfigError

    backend, jobs = args.executor, args.jobs
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs {jobs}: expected a whole number >= 1")
    if backend is None and (jobs or 1) > 1:
        backend = "local"
    if backend is None:
        extra = [f for f, v in (("--gpus-per-job", args.gpus_per_job), ("--slurm-option", args.slurm_option)) if v]
        if extra:
            raise ConfigError(f"{', '.join(extra)} need --executor (local, ray or slurm)")
        return None
    options = []
    for item in args.slurm_option:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--slurm-option {item!r}: expected KEY=VALUE, e.g. slurm_partition=gpu")
        options.append((key.strip(), _value(value.strip())))
    if options and backend != "slurm":
        raise ConfigError(f"--slurm-option is for --executor slurm, not {backend}")
    if jobs is None:  # local: one job per core; slurm: submitit's own array default; ray: as local
        jobs = 256 if backend == "slurm" else (os.cpu_count() or 1)
    # Local and Ray jobs share this machine's cores: each gets its share (1 when jobs >= cores).
    threads = 1 if backend == "slurm" else max(1, (os.cpu_count() or 1) // jobs)
    return ExecutorConfig(backend, jobs=jobs, gpus_per_job=args.gpus_per_job, threads=threads, options=tuple(options))
