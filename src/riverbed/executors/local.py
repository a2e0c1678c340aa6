"""`--executor local`: a pool of K processes on this machine, warm from the first job.

Each job is its own process running ``riverbed.executors.jobs.entry``, forked from a fork
server (multiprocessing's *forkserver* context) that imported torch and the training modules
once (:data:`PRELOAD`): a job starts in milliseconds instead of paying a fresh interpreter and
``import torch`` (seconds) each time, and still shares nothing with the submitter or with the
other jobs -- the server itself has only imported modules, never run a job, so every job
starts from the same clean state, as a job on another machine does. The server is started
when the executor is made, so its imports overlap the submitter's own work. Where there is no
fork server (Windows) each job is a fresh *spawn* process. At most ``jobs`` run at once, the
rest wait in order; each trains with the threads its task is given. The answer comes back
over a pipe; a process that ends without answering (killed, out of memory) is a job that
died, with its exit code or signal.

With ``gpus_per_job = 1`` every running job gets its own GPU through ``CUDA_VISIBLE_DEVICES``
(from the submitter's visible devices), so ``jobs`` may not exceed the GPUs there are.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from collections import deque
from collections.abc import Sequence
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from typing import Any

from riverbed.errors import ConfigError
from riverbed.executors.base import Executor, ExecutorConfig, Handle, Outcome, Task
from riverbed.executors.jobs import entry
from riverbed.runs.manifest import JobInfo


#: Imported once by the fork server, so that no job pays for them: torch, torch._dynamo (which the
#: first optimizer imports: seconds) and what a branch job runs.
PRELOAD = ("torch", "torch._dynamo", "riverbed.executors.jobs", "riverbed.runs.fork", "riverbed.runs.config_io",
           "riverbed.orchestration.fork", "riverbed.training.loop", "riverbed.checkpoints.state",
           "riverbed.checkpoints.layout")


def job_context() -> Any:
    """The multiprocessing context jobs start in: a fork server with :data:`PRELOAD`, else spawn."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))  # only the first start of the server reads it
    return ctx


def start_server() -> None:
    """Start the fork server (its imports of :data:`PRELOAD` run in the background); where there is
    none (Windows), nothing. Idempotent: one server per process."""
    ctx = job_context()
    if ctx.get_start_method() == "forkserver":
        forkserver.ensure_running()


def set_environment(env: dict[str, str]) -> None:
    """Make ``env`` (the submitter's whole environment as of the submission, plus the job's own
    variables) this job's: a forked job would otherwise see the fork server's, frozen at its start."""
    os.environ.clear()
    os.environ.update(env)


def _child(kind: str, payload: str, conn: Connection, env: dict[str, str]) -> None:
    """The job process: run the task, send its answer, exit."""
    set_environment(env)
    answer = entry(kind, payload)
    conn.send_bytes(answer.encode("utf-8"))
    conn.close()


def _visible_gpus() -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d for d in env.split(",") if d.strip()]
    import torch  # only to count GPUs when jobs ask for them

    return [str(i) for i in range(torch.cuda.device_count())]


class LocalHandle(Handle):
    def __init__(self, pool: LocalExecutor, task: Task, job: JobInfo) -> None:
        self.pool, self.task, self.job = pool, task, job
        self.process: Any = None
        self.conn: Connection | None = None
        self.gpu: str | None = None
        self._outcome: Outcome | None = None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def _collect(self) -> None:
        """Read the answer of an ended (or answering) process."""
        if self._outcome is not None or self.process is None:
            return
        assert self.conn is not None
        if self.conn.poll():
            try:
                text = self.conn.recv_bytes().decode("utf-8")
            except (EOFError, OSError):
                text = None
            if text is not None:
                self._outcome = Outcome.from_json(text, f"job local:{self.job.id}")
                self.process.join(timeout=30)
                return
        code = self.process.exitcode
        if code is None:
            return
        how = f"was killed by signal {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        self._outcome = Outcome.died(f"its process (pid {self.process.pid}) {how} without answering")

    def done(self) -> bool:
        self.pool.pump()
        return self._outcome is not None

    def cancel(self) -> None:
        if self.process is None:
            self._outcome = Outcome.died("cancelled before it started")
        elif self.process.exitcode is None:
            self.process.terminate()
            self.process.join(timeout=30)


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, config: ExecutorConfig) -> None:
        super().__init__(config)
        self._ctx = job_context()
        self._waiting: deque[LocalHandle] = deque()
        self._running: list[LocalHandle] = []
        self._gpus: list[str] = []
        if config.gpus_per_job:
            self._gpus = _visible_gpus()
            if len(self._gpus) < config.jobs:
                raise ConfigError(f"--jobs {config.jobs} --gpus-per-job {config.gpus_per_job}: only {len(self._gpus)} "
                                  f"GPU(s) visible here (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
        self._count = 0
        start_server()  # its imports run while the submitter queues (callers start it earlier: executors.warm_up)

    def submit(self, tasks: Sequence[Task]) -> list[LocalHandle]:
        handles = []
        for t in tasks:
            self._count += 1
            handles.append(LocalHandle(self, t, JobInfo("local", f"{os.getpid()}.{self._count}")))
        self._waiting.extend(handles)
        self.pump()
        return handles

    def pump(self) -> None:
        """Collect ended jobs, start waiting ones while a slot is free."""
        for h in list(self._running):
            h._collect()
            if h._outcome is not None:
                self._running.remove(h)
        while self._waiting and len(self._running) < self.config.jobs:
            h = self._waiting.popleft()
            if h._outcome is not None:  # cancelled while waiting
                continue
            self._start(h)
            self._running.append(h)

    def _start(self, h: LocalHandle) -> None:
        env = {**os.environ, "RIVERBED_JOB_ID": h.job.id}
        if self._gpus:
            busy = {r.gpu for r in self._running}
            h.gpu = next(g for g in self._gpus if g not in busy)
            env["CUDA_VISIBLE_DEVICES"] = h.gpu
        recv, send = self._ctx.Pipe(duplex=False)
        payload = {**h.task.payload, "job_id": h.job.id}
        h.process = self._ctx.Process(target=_child, args=(h.task.kind, Task(h.task.kind, payload, h.task.label).payload_json(),
                                                           send, env), name=f"riverbed-job-{h.task.label}")
        h.process.start()
        send.close()  # the child holds the sending end; EOF here once it exits
        h.conn = recv

    def close(self) -> None:
        for h in list(self._waiting):
            h.cancel()
        self._waiting.clear()
        for h in self._running:
            h.cancel()
        self._running.clear()
