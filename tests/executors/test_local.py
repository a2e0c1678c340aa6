"""`--executor local`: branches as spawned processes -- the CLI, the same weights as one
process, a job that raises, a job killed mid-training (failed, then resumed exactly)."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time

import pytest

from riverbed.checkpoints import layout
from riverbed.cli.main import main
from riverbed.executors import ExecutorConfig
from riverbed.executors.base import JobError
from riverbed.runs import Run
from riverbed.executors.branches import run_requests
from riverbed.runs.fork import plan_requests
from tests.executors.conftest import break_device, needs_no_cuda


def final_weights(run_dir, branch):
    return layout.list_checkpoints(run_dir, branch)[-1].path.joinpath(layout.MODEL_FILE).read_bytes()


@pytest.mark.slow  # two spawned processes importing torch: seconds, not a fraction of one
def test_cli_local_jobs_train_the_same_weights_as_one_process(tiny_main, tiny_data, tmp_path, capsys):
    seq = tmp_path / "seq"
    shutil.copytree(tiny_main.path, seq)
    rc = main(["branch", str(tiny_main.path), "--from", "10,20", "--shape", "linear", "--length", "4 steps",
               "--jobs", "2", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "linear-from20-len4" in out
    run = Run.open(tiny_main.path)
    recs = [run.branch(n) for n in ("linear-from10-len4", "linear-from20-len4")]
    assert [r.status for r in recs] == ["finished", "finished"]
    assert all(r.job.backend == "local" and r.job.id.startswith(f"{os.getpid()}.") for r in recs)
    run_requests(Run.open(seq), plan_requests(Run.open(seq), [10, 20], "linear", 4), progress=False, data=tiny_data)
    for r in recs:
        assert final_weights(tiny_main.path, r.name) == final_weights(seq, r.name)


def test_cli_job_that_raises_exits_2_naming_branch_and_job(tiny_main, capsys):
    needs_no_cuda()
    break_device(tiny_main.path)
    rc = main(["branch", str(tiny_main.path), "--from", "10", "--shape", "linear", "--length", "4 steps",
               "--executor", "local", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "branch 'linear-from10-len4' (job local:" in err and "CUDA is not available" in err
    assert Run.open(tiny_main.path).branch("linear-from10-len4").status == "failed"
    assert layout.list_checkpoints(tiny_main.path, "linear-from10-len4") == []  # nothing half-written


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::riverbed.errors.RiverbedWarning")  # a 200-step decay from step 20, on purpose
def test_job_killed_mid_training_is_failed_and_a_rerun_resumes_it_exactly(tiny_main, tiny_data, tmp_path):
    ref = tmp_path / "ref"
    shutil.copytree(tiny_main.path, ref)
    reqs = plan_requests(tiny_main, [20], "linear", 200)
    name = reqs[0].name
    killed: list[int] = []

    def killer():  # kill -9 the job once it saved its first checkpoint of the branch
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            b = Run.open(tiny_main.path).manifest.branches.get(name)
            if b is not None and b.status == "running" and b.pid and b.progress and b.progress.step >= 30:
                os.kill(b.pid, signal.SIGKILL)
                killed.append(b.progress.step)
                return
            time.sleep(0.02)

    t = threading.Thread(target=killer)
    t.start()
    with pytest.raises(JobError, match=rf"branch '{name}' \(job local:\S+\) died: .*killed by signal SIGKILL"):
        run_requests(tiny_main, reqs, progress=False, executor=ExecutorConfig("local", jobs=1))
    t.join()
    assert killed, "the job ended before it could be killed"
    rec = Run.open(tiny_main.path).branch(name)
    assert rec.status == "failed" and "SIGKILL" in rec.error
    kept = layout.list_checkpoints(tiny_main.path, name)[0]
    mtime = kept.path.joinpath(layout.MODEL_FILE).stat().st_mtime_ns
    recs = run_requests(tiny_main, reqs, progress=False, executor=ExecutorConfig("local", jobs=1))
    assert recs[0].status == "finished" and recs[0].final.step == 220
    assert kept.path.joinpath(layout.MODEL_FILE).stat().st_mtime_ns == mtime  # resumed, not retrained
    run_requests(Run.open(ref), plan_requests(Run.open(ref), [20], "linear", 200), progress=False, data=tiny_data)
    assert final_weights(tiny_main.path, name) == final_weights(ref, name)


def test_jobs_fork_from_a_server_that_imported_torch_once():
    import importlib
    import multiprocessing as mp

    from riverbed.executors.local import PRELOAD, job_context

    for name in PRELOAD:  # a moved module would silently leave every job to import it again
        importlib.import_module(name)
    ctx = job_context()
    expected = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    assert ctx.get_start_method() == expected


def test_cli_gives_each_local_job_its_share_of_the_cores(monkeypatch):
    import argparse

    from riverbed.executors.flags import add_executor_arguments, executor_from_args

    p = argparse.ArgumentParser()
    add_executor_arguments(p, what="branch")
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert executor_from_args(p.parse_args(["--jobs", "2"])).threads == 4
    assert executor_from_args(p.parse_args(["--jobs", "8"])).threads == 1
    assert executor_from_args(p.parse_args(["--jobs", "16"])).threads == 1
    assert executor_from_args(p.parse_args(["--executor", "local"])).threads == 1  # jobs = cores


def _report_environment(conn, env):
    from riverbed.executors.local import set_environment

    set_environment(env)
    conn.send_bytes(os.environ.get("RIVERBED_TEST_ENV_PROBE", "<unset>").encode())
    conn.close()


def test_a_job_sees_the_submitters_environment_as_of_its_submission(monkeypatch):
    from riverbed.executors.local import job_context

    ctx = job_context()
    seen = []
    for value in ("first", "second", None):  # the fork server started before the later values were set
        if value is None:
            monkeypatch.delenv("RIVERBED_TEST_ENV_PROBE")
        else:
            monkeypatch.setenv("RIVERBED_TEST_ENV_PROBE", value)
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_report_environment, args=(send, dict(os.environ)))
        p.start()
        send.close()
        seen.append(recv.recv_bytes().decode())
        p.join(timeout=60)
    assert seen == ["first", "second", "<unset>"]
