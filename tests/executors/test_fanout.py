"""The fan-out's bookkeeping in run.json, in-process (no job processes): queueing, rollback,
failed and died jobs, a second writer, the CLI flags and a missing backend."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

import pytest

from riverbed.checkpoints import layout
from riverbed.checkpoints.layout import writer_lock
from riverbed.errors import ConfigError, LockedError, RunError
from riverbed.executors import ExecutorConfig, get_executor
from riverbed.executors.base import Executor, Handle, JobError, Outcome, Task
from riverbed.executors.jobs import entry
from riverbed.runs import Run
from riverbed.executors.branches import run_requests
from riverbed.runs.fork import plan_requests
from riverbed.runs.manifest import BranchRecord, JobInfo
from tests.executors.conftest import break_device, needs_no_cuda


class InlineHandle(Handle):
    def __init__(self, task: Task, job: JobInfo, outcome: Outcome) -> None:
        self.task, self.job, self._out = task, job, outcome

    def done(self) -> bool:
        return True

    def outcome(self) -> Outcome:
        return self._out

    def cancel(self) -> None:
        pass


class InlineExecutor(Executor):
    """Runs each job's real entry point in this process at submission; ``die`` names the
    branches whose job "dies" instead (answers nothing, trains nothing)."""

    name = "local"

    def __init__(self, die: Sequence[str] = (), fail_submit: bool = False) -> None:
        super().__init__(ExecutorConfig("local"))
        self.die, self.fail_submit, self.seen = set(die), fail_submit, []

    def submit(self, tasks):
        if self.fail_submit:
            raise RuntimeError("the cluster refused the submission")
        out = []
        for i, t in enumerate(tasks):
            self.seen.append(t)
            job = JobInfo("local", f"inline.{i}")
            if t.label in self.die:
                out.append(InlineHandle(t, job, Outcome.died("its process was killed by signal SIGKILL")))
            else:
                answer = entry(t.kind, json.dumps({**t.payload, "job_id": job.id}))
                out.append(InlineHandle(t, job, Outcome.from_json(answer, job.id)))
        return out


def _reqs(run, steps=(10, 20), length=4):
    return plan_requests(run, list(steps), "linear", length)


def test_branches_run_as_jobs_and_record_their_job(tiny_main):
    ex = InlineExecutor()
    recs = run_requests(tiny_main, _reqs(tiny_main), progress=False, executor=ex)
    assert [r.status for r in recs] == ["finished", "finished"]
    assert [r.job.id for r in recs] == ["inline.0", "inline.1"] and all(r.job.backend == "local" for r in recs)
    assert [t.payload["name"] for t in ex.seen] == ["linear-from10-len4", "linear-from20-len4"]
    raw = json.loads((tiny_main.path / layout.MANIFEST).read_text())
    assert raw["branches"]["linear-from10-len4"]["job"]["id"] == "inline.0"


def test_failed_submission_leaves_the_run_as_it_was(tiny_main):
    before = (tiny_main.path / layout.MANIFEST).read_bytes()
    with pytest.raises(RuntimeError, match="refused"):
        run_requests(tiny_main, _reqs(tiny_main), progress=False, executor=InlineExecutor(fail_submit=True))
    assert (tiny_main.path / layout.MANIFEST).read_bytes() == before
    assert sorted(p.name for p in (tiny_main.path / layout.BRANCHES).iterdir()) == ["main"]


def test_a_job_that_dies_is_a_failed_branch_that_a_rerun_resumes(tiny_main):
    reqs = _reqs(tiny_main)
    with pytest.raises(JobError) as exc:
        run_requests(tiny_main, reqs, progress=False, executor=InlineExecutor(die=["linear-from20-len4"]))
    msg = str(exc.value)
    assert "1 of 2" in msg and "branch 'linear-from20-len4' (job local:inline.1) died" in msg and "SIGKILL" in msg
    assert [r.status for r in exc.value.records] == ["finished", "failed"]
    dead = Run.open(tiny_main.path).branch("linear-from20-len4")
    assert dead.status == "failed" and "job local:inline.1 died" in dead.error and dead.pid is None
    # the same requests again (as the CLI re-runs them: finished branches kept) resume the failed one
    done = Run.open(tiny_main.path).branch("linear-from10-len4")
    ex = InlineExecutor()
    recs = run_requests(tiny_main, reqs, progress=False, executor=ex, skip_finished=True)
    assert [r.status for r in recs] == ["finished", "finished"] and recs[1].error is None
    assert [t.label for t in ex.seen] == ["linear-from20-len4"] and recs[0] == done


def test_a_job_that_raises_names_the_branch_job_and_error(tiny_main):
    needs_no_cuda()
    break_device(tiny_main.path)
    with pytest.raises(JobError, match=r"branch 'linear-from10-len4' \(job local:inline.0\) failed: .*CUDA is not available"):
        run_requests(tiny_main, _reqs(tiny_main, (10,)), progress=False, executor=InlineExecutor())
    rec = Run.open(tiny_main.path).branch("linear-from10-len4")
    assert rec.status == "failed" and "CUDA is not available" in rec.error


def test_a_second_writer_is_refused_before_anything_is_queued(tiny_main):
    reqs = _reqs(tiny_main, (10,))
    with pytest.raises(JobError):
        run_requests(tiny_main, reqs, progress=False, executor=InlineExecutor(die=[reqs[0].name]))
    before = (tiny_main.path / layout.MANIFEST).read_bytes()
    with writer_lock(tiny_main.path, reqs[0].name):  # another writer (this process) holds the branch
        with pytest.raises(LockedError, match=rf"branch '{reqs[0].name}' .*being written by another process \(pid {os.getpid()}"):
            run_requests(tiny_main, reqs, progress=False, executor=InlineExecutor())
    assert (tiny_main.path / layout.MANIFEST).read_bytes() == before


def test_a_job_that_finds_the_branch_locked_leaves_its_record_alone(tiny_main, monkeypatch):
    """Two executors racing past the submit-time check: the second job meets the writer lock."""
    import riverbed.executors.fanout as fanout
    from riverbed.executors.base import Outcome as O

    reqs = _reqs(tiny_main, (10,))
    ex = InlineExecutor()
    locked = O(False, error=f"branch {reqs[0].name!r} of {tiny_main.path} is being written by another process", error_type="LockedError")
    monkeypatch.setattr(ex, "submit", lambda tasks: [InlineHandle(t, JobInfo("local", "x.1"), locked) for t in tasks])
    monkeypatch.setattr(fanout, "check_free", lambda run, names: None)
    with pytest.raises(JobError, match=rf"branch '{reqs[0].name}' \(job local:x.1\): .*being written by another process"):
        run_requests(tiny_main, reqs, progress=False, executor=ex)
    assert Run.open(tiny_main.path).branch(reqs[0].name).status == "queued"  # the other writer's, untouched


def test_local_and_ray_jobs_cannot_be_left_queued(tiny_main):
    with pytest.raises(ConfigError, match="always waits"):
        run_requests(tiny_main, _reqs(tiny_main), progress=False, executor=InlineExecutor(), wait=False)


def test_queued_records_reconcile_with_their_submitter(tiny_main, dead_pid):
    run = tiny_main
    for name, pid in (("a", dead_pid), ("b", None)):
        run.add_branch(BranchRecord(name, "decay", {}, parent="main", status="queued", pid=pid,
                                    host=os.uname().nodename, job=JobInfo("slurm" if pid is None else "local", "7")))
    run = Run.open(run.path)
    assert run.branch("a").status == "stopped" and "never started" in run.branch("a").error
    assert run.branch("b").status == "queued"  # a Slurm job outlives its submitter
    with pytest.raises(RunError, match=r"'b' is queued \(job slurm:7\)"):
        run.delete_branch("b")


def test_job_info_is_strict_json_and_checked():
    from riverbed.runs.manifest import BranchRecord as BR

    rec = BR("x", "decay", {}, status="queued", job=JobInfo("ray", "ab12", "2026-12-01T00:00:00Z"))
    d = json.loads(json.dumps(rec.to_dict(), allow_nan=False))
    assert d["job"] == {"backend": "ray", "id": "ab12", "submitted": "2026-12-01T00:00:00Z"}
    assert BR.from_dict(d, "run.json").job == rec.job
    with pytest.raises(RunError, match=r"run.json.job: malformed job"):
        BR.from_dict({**d, "job": {"backend": 3}}, "run.json")


def test_executor_config_checks_its_values():
    for kw, msg in (({"backend": "k8s"}, "--executor 'k8s'"), ({"jobs": 0}, "--jobs 0"), ({"gpus_per_job": 2}, "--gpus-per-job 2"),
                    ({"gpus_per_job": -1}, "--gpus-per-job -1")):
        with pytest.raises(ConfigError, match=msg):
            ExecutorConfig(**kw)


def test_missing_backend_names_its_extra(monkeypatch):
    from riverbed.extras import MissingExtraError

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "riverbed.executors.ray_tasks", raising=False)
    with pytest.raises(MissingExtraError, match=r"--executor ray needs ray, which is not installed: pip install 'riverbed\[ray\]'"):
        get_executor("ray")
    monkeypatch.setitem(sys.modules, "submitit", None)
    monkeypatch.delitem(sys.modules, "riverbed.executors.slurm", raising=False)
    with pytest.raises(MissingExtraError, match=r"riverbed\[slurm\]"):
        get_executor("slurm", folder="unused")


def test_backend_extras_are_declared_and_named():
    import tomllib
    from pathlib import Path

    from riverbed.extras import EXTRAS

    extras = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("ray") for d in extras[EXTRAS["ray"]])
    assert any(d.startswith("submitit") for d in extras[EXTRAS["submitit"]])
    assert any(d.startswith("submitit") for d in extras["dev"])  # light: in dev; ray is installed apart (.ci/run)
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert "pip install -q 'ray" in ci and "torch==" in ci and "RIVERBED_REQUIRE_EXECUTORS=1" in ci
