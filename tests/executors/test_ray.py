"""`--executor ray` on a local Ray cluster (ray.init(num_cpus=2)): branches as Ray tasks, a task
that raises, a worker killed mid-training (failed, then resumed)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from riverbed.checkpoints import layout
from riverbed.executors import ExecutorConfig
from riverbed.executors.base import JobError
from riverbed.runs import Run
from riverbed.executors.branches import run_requests
from riverbed.runs.fork import plan_requests
from tests.executors.conftest import break_device, need, needs_no_cuda

pytestmark = pytest.mark.slow  # starting a Ray cluster takes seconds


@pytest.fixture(scope="module")
def ray_cluster():
    need("ray", "ray")
    import ray

    # Workers import riverbed from the same sources as this process.
    src = os.path.dirname(os.path.dirname(os.path.abspath(__import__("riverbed").__file__)))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}})
    yield ray
    ray.shutdown()


def test_branches_run_as_ray_tasks(ray_cluster, tiny_main):
    recs = run_requests(tiny_main, plan_requests(tiny_main, [10, 20], "linear", 4), progress=False,
                        executor=ExecutorConfig("ray", jobs=2))
    assert [r.status for r in recs] == ["finished", "finished"]
    assert all(r.job.backend == "ray" and len(r.job.id) > 8 for r in recs)
    assert all(layout.list_checkpoints(tiny_main.path, r.name)[-1].step == r.fork.step + 4 for r in recs)


def test_a_ray_task_that_raises_is_a_failed_branch(ray_cluster, tiny_main):
    needs_no_cuda()
    break_device(tiny_main.path)
    with pytest.raises(JobError, match=r"branch 'linear-from10-len4' \(job ray:\w+\) failed: .*CUDA is not available"):
        run_requests(tiny_main, plan_requests(tiny_main, [10], "linear", 4), progress=False, executor="ray")
    assert Run.open(tiny_main.path).branch("linear-from10-len4").status == "failed"


@pytest.mark.filterwarnings("ignore::riverbed.errors.RiverbedWarning")  # a long decay from step 20, on purpose
def test_a_killed_ray_worker_is_a_failed_branch_that_a_rerun_resumes(ray_cluster, tiny_main):
    reqs = plan_requests(tiny_main, [20], "linear", 200)
    name = reqs[0].name

    def killer():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            b = Run.open(tiny_main.path).manifest.branches.get(name)
            if b is not None and b.status == "running" and b.pid and b.progress and b.progress.step >= 30:
                os.kill(b.pid, signal.SIGKILL)
                return
            time.sleep(0.02)

    t = threading.Thread(target=killer)
    t.start()
    with pytest.raises(JobError, match=rf"branch '{name}' \(job ray:\w+\) died"):
        run_requests(tiny_main, reqs, progress=False, executor="ray")
    t.join()
    assert Run.open(tiny_main.path).branch(name).status == "failed"
    first = layout.list_checkpoints(tiny_main.path, name)[0]
    recs = run_requests(tiny_main, reqs, progress=False, executor="ray")
    assert recs[0].status == "finished" and recs[0].final.step == 220
    assert layout.list_checkpoints(tiny_main.path, name)[0] == first
