"""`--executor ray`: every job is a Ray task (``riverbed[ray]``).

Joins the Ray cluster already initialised in this process, else ``ray.init(address=...)``
(option ``address``; ``RAY_ADDRESS`` or none: a local cluster of ``jobs x threads`` CPUs).
Each task asks for ``threads`` CPUs and ``gpus_per_job`` GPUs and Ray's scheduler places it;
tasks are never retried by Ray (``max_retries=0``): a task whose worker dies is a failed
branch, and running the command again resumes it from its newest checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import ray  # the `ray` extra; riverbed.executors imports this module only for --executor ray

from riverbed.executors.base import Executor, ExecutorConfig, Handle, Outcome, Task
from riverbed.executors.jobs import entry
from riverbed.runs.manifest import JobInfo


class RayHandle(Handle):
    def __init__(self, task: Task, ref: Any) -> None:
        self.task, self.ref = task, ref
        self.job = JobInfo("ray", ref.task_id().hex())
        self._outcome: Outcome | None = None

    def done(self) -> bool:
        if self._outcome is None:
            ready, _ = ray.wait([self.ref], timeout=0)
            if ready:
                self._outcome = self._read()
        return self._outcome is not None

    def _read(self) -> Outcome:
        try:
            return Outcome.from_json(ray.get(self.ref), f"ray task {self.job.id}")
        except ray.exceptions.TaskCancelledError:
            return Outcome.died("it was cancelled")
        except ray.exceptions.RayError as exc:  # worker crashed or killed, node lost, ...
            return Outcome.died(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": "))

    def cancel(self) -> None:
        if self._outcome is None:
            ray.cancel(self.ref, force=True)


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, config: ExecutorConfig) -> None:
        super().__init__(config)
        self._owns = False
        if not ray.is_initialized():
            address = config.option("address") or os.environ.get("RAY_ADDRESS")
            kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
            if not address:  # a local cluster just wide enough for the jobs asked for
                kw["num_cpus"] = config.jobs * config.threads
                kw["num_gpus"] = config.jobs * config.gpus_per_job
            ray.init(address=address, **kw)
            self._owns = True
        self._remote = ray.remote(max_retries=0, num_cpus=config.threads, num_gpus=config.gpus_per_job)(entry)
        self._handles: list[RayHandle] = []

    def submit(self, tasks: Sequence[Task]) -> list[RayHandle]:
        out = [RayHandle(t, self._remote.options(name=f"riverbed-{t.label}").remote(t.kind, t.payload_json())) for t in tasks]
        self._handles += out
        return out

    def close(self) -> None:
        for h in self._handles:
            if not h.done():
                h.cancel()
        if self._owns:
            ray.shutdown()
