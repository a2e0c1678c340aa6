"""`--executor slurm`: every job is a Slurm job submitted with submitit (``riverbed[slurm]``).

The jobs of one submission form a job array (at most ``jobs`` run at once:
``slurm_array_parallelism``) with one task, ``threads`` CPUs and ``gpus_per_job`` GPUs each.
Options are submitit parameters (``slurm_partition``, ``timeout_min``, ``mem_gb``, ...);
``cluster="local"`` runs them as local processes through submitit's local executor (no
cluster needed; what the tests use). Job files and logs go to the folder the caller names
(``RUN/jobs/slurm`` for branches), which must be on a filesystem the nodes share.

Slurm jobs outlive the submitting process: ``riverbed branch --executor slurm`` returns once
they are queued, ``riverbed ls`` shows them, ``riverbed branch RUN --wait`` waits for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import submitit  # the `slurm` extra; riverbed.executors imports this module only for --executor slurm

from riverbed.errors import ConfigError
from riverbed.executors.base import Executor, ExecutorConfig, Handle, Outcome, Task
from riverbed.executors.jobs import entry
from riverbed.runs.manifest import JobInfo

#: A day: submitit's local executor would otherwise stop a job after 2 minutes, Slurm after 5.
DEFAULT_TIMEOUT_MIN = 24 * 60


class SlurmHandle(Handle):
    def __init__(self, task: Task, job: Any) -> None:
        self.task, self._job = task, job
        self.job = JobInfo("slurm", str(job.job_id))
        self._outcome: Outcome | None = None

    def done(self) -> bool:
        if self._outcome is None and self._job.done():
            try:
                self._outcome = Outcome.from_json(self._job.result(), f"slurm job {self.job.id}")
            except submitit.core.utils.UncompletedJobError as exc:  # killed, timed out, preempted, ...
                first = str(exc).strip().splitlines()
                self._outcome = Outcome.died(f"state {self._job.state}" + (f": {first[0]}" if first else ""))
        return self._outcome is not None

    def cancel(self) -> None:
        if self._outcome is None:
            self._job.cancel(check=False)


class SlurmExecutor(Executor):
    name = "slurm"
    detached = True

    def __init__(self, config: ExecutorConfig, folder: str | Path) -> None:
        super().__init__(config)
        opts = dict(config.options)
        cluster = opts.pop("cluster", None)
        self.folder = Path(folder)
        try:
            self._ex = submitit.AutoExecutor(folder=self.folder / "%j", cluster=cluster)
            params: dict[str, Any] = {"timeout_min": DEFAULT_TIMEOUT_MIN, "tasks_per_node": 1, "nodes": 1,
                                      "cpus_per_task": config.threads, "slurm_array_parallelism": config.jobs}
            if config.gpus_per_job:
                params["gpus_per_node"] = config.gpus_per_job
            self._ex.update_parameters(**{**params, **opts})
        except (ValueError, TypeError, RuntimeError) as exc:  # unknown cluster or parameter, no sbatch
            raise ConfigError(f"--executor slurm (options {dict(config.options)!r}): {exc}") from None

    def submit(self, tasks: Sequence[Task]) -> list[SlurmHandle]:
        try:
            with self._ex.batch():
                jobs = [self._ex.submit(entry, t.kind, t.payload_json()) for t in tasks]
        except submitit.core.utils.FailedSubmissionError as exc:
            raise ConfigError(f"--executor slurm: submission failed: {exc}") from None
        return [SlurmHandle(t, j) for t, j in zip(tasks, jobs, strict=True)]


#: Slurm states of a job that ended without finishing its work.
DEAD_STATES = ("BOOT_FAIL", "CANCELLED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT")


def dead_state(folder: str | Path, job_id: str) -> str | None:
    """The Slurm state of a job that died (None while it is pending, running or done, or when
    this machine has no ``sacct`` to ask): a job killed by the scheduler never updates run.json."""
    import shutil

    if shutil.which("sacct") is None:
        return None
    state = str(submitit.SlurmJob(folder=Path(folder) / "%j", job_id=job_id).state).split()[0].upper()
    return state if state in DEAD_STATES else None
