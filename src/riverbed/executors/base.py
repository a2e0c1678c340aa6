"""What every executor backend shares: its configuration, the task it runs, a job handle.

A :class:`Task` is a name from the literal table ``riverbed.executors.jobs.JOBS`` plus a strict
JSON payload; the job process runs ``riverbed.executors.jobs.entry(kind, payload)`` and answers
a JSON :class:`Outcome`. Only that module function (by reference) and two strings cross the
process boundary, so nothing riverbed-specific is pickled: Ray and submitit still serialise
the call with cloudpickle, into job files riverbed itself writes under ``RUN/jobs/``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from riverbed.errors import ConfigError, RiverbedError
from riverbed.runs.manifest import JobInfo

#: The executor backends, literal (riverbed.executors.get_executor builds each one).
BACKENDS = ("local", "ray", "slurm")


class JobError(RiverbedError):
    """One or more jobs failed or died. The message names each branch (or cell) and its job;
    ``records`` holds the branch records as they ended (finished ones included)."""

    def __init__(self, message: str, records: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.records = list(records)


@dataclass(frozen=True)
class ExecutorConfig:
    """Where and how wide to run jobs.

    ``jobs``: how many run at once -- the local pool's size, Slurm's array parallelism; Ray
    runs as many as its cluster's resources allow (each task asks for ``threads`` CPUs and
    ``gpus_per_job`` GPUs). ``options``: backend keyword arguments -- Slurm: submitit
    parameters (``partition``, ``timeout_min``, ...; ``cluster="local"`` runs the jobs as local
    processes through submitit, no cluster needed); Ray: ``address`` of a cluster to join.
    """

    backend: str = "local"
    jobs: int = 1
    gpus_per_job: int = 0
    threads: int = 1
    options: tuple[tuple[str, Any], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"--executor {self.backend!r}: expected one of {', '.join(BACKENDS)}")
        for key, value in (("--jobs", self.jobs), ("threads", self.threads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key} {value!r}: expected a whole number >= 1")
        g = self.gpus_per_job
        if isinstance(g, bool) or not isinstance(g, int) or g < 0:
            raise ConfigError(f"--gpus-per-job {g!r}: expected a whole number >= 0")
        if g > 1:
            # One job is one training process; a G-GPU job needs a launcher (torchrun) per job.
            raise ConfigError(f"--gpus-per-job {g}: a job trains in one process on one GPU; more per job is not supported yet")
        try:
            json.dumps(dict(self.options), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"executor options {dict(self.options)!r}: not JSON values ({exc})") from None

    def option(self, key: str, default: Any = None) -> Any:
        return dict(self.options).get(key, default)


@dataclass(frozen=True)
class Task:
    """One job: ``kind`` (a name in ``riverbed.executors.jobs.JOBS``, or a caller's ``"module:function"``), its JSON payload and the
    label that messages name it by (a branch or a grid cell)."""

    kind: str
    payload: dict[str, Any]
    label: str

    def payload_json(self) -> str:
        return json.dumps(self.payload, allow_nan=False, sort_keys=True)


@dataclass(frozen=True)
class Outcome:
    """How a job ended: its JSON result, or the error it raised, or how it died."""

    ok: bool
    result: Any = None
    error: str | None = None
    error_type: str | None = None  # the exception's class name; "died" when the job never answered

    @staticmethod
    def from_json(text: str, where: str) -> Outcome:
        try:
            d = json.loads(text)
            return Outcome(bool(d["ok"]), d.get("result"), d.get("error"), d.get("error_type"))
        except (TypeError, ValueError, KeyError) as exc:
            return Outcome(False, error=f"{where}: unreadable job answer {text!r:.200} ({exc})", error_type="died")

    @staticmethod
    def died(why: str) -> Outcome:
        return Outcome(False, error=why, error_type="died")


class Handle(ABC):
    """A submitted job: poll it with :meth:`done`, then read its :meth:`outcome`."""

    task: Task
    job: JobInfo
    _outcome: Outcome | None = None
    """Set by :meth:`done` once the job ended."""

    @abstractmethod
    def done(self) -> bool:
        """True once the job ended (however it ended); never blocks."""

    def outcome(self) -> Outcome:
        """How it ended (call after :meth:`done` is True)."""
        if not self.done():
            raise RuntimeError("outcome() before done()")
        assert self._outcome is not None
        return self._outcome

    @abstractmethod
    def cancel(self) -> None:
        """Stop it if it still runs (its branch is left resumable)."""


class Executor(ABC):
    """A backend that runs tasks as independent jobs."""

    name: str
    #: True when jobs outlive the submitting process (a Slurm queue): submit-and-return works.
    detached: bool = False

    def __init__(self, config: ExecutorConfig) -> None:
        self.config = config

    @abstractmethod
    def submit(self, tasks: Sequence[Task]) -> list[Handle]:
        """Start (or queue) every task; returns one handle per task, in order."""

    def close(self) -> None:
        """Release the backend (stop what this process started)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
