"""Fan-out benchmark: K decay branches of one run, sequential in one process vs jobs.

One small run (a main branch with a checkpoint at the fork) is trained once under --dir; then
each contender forks the same K decay branches (1-sqrt, --length steps each) on its own copy:

  (a) sequential  `run_requests` in this process, one branch after another (data loaded once)
  (b) local       `--executor local`: one process per branch, forked from the executor's warm
                  fork server, min(K, cores) at a time as the CLI's default (--jobs J: J at a time)
  (c) ray         `--executor ray`: Ray tasks on a local cluster of min(K, cores) CPUs
                  (the cluster's start is timed apart and not counted in the fan-out)

Every job trains on one thread (train.threads = 1), as the sequential branches do. Reported:
wall time; the parallel efficiency against the ideal, sequential / min(K, cores); and the
per-job start-up overhead: a one-step branch as one job minus the same branch in this process
(a fork from the warm server -- whose own start, once per command, is part of the fan-out's
wall time --, reading the run, the data and the fork checkpoint; Ray reuses warm worker
processes too). The weights of every branch are checked to be byte-identical across the
contenders, and the exit code is 1 when they are not.

  .venv/bin/python bench/fanout.py                 # K=4 branches of 60 steps
  .venv/bin/python bench/fanout.py --k 2 --length 30 --contenders sequential,local
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

TOML = """
[model]
preset = "tiny"
d_model = {d_model}
n_layers = {n_layers}
n_heads = 4
n_kv_heads = 2
d_ff = {d_ff}

[schedule]
type = "warmup-stable"
warmup = 4

[optim]
lr = 0.003

[train]
batch_size = {batch}
seq_len = {seq}
max_steps = {fork}
ckpt_every = {fork}
eval_every = 0
eval_batches = 2
log_every = 100
tensorboard = false
device = "cpu"
threads = 1
"""


def make_run(root: Path, args: argparse.Namespace) -> Path:
    from riverbed.config import load_config_text
    from riverbed.runs import Run
    from riverbed.orchestration.drive import train_main

    cfg = load_config_text(TOML.format(d_model=args.d_model, n_layers=args.n_layers, d_ff=4 * args.d_model,
                                       batch=args.batch, seq=args.seq, fork=args.fork))
    run = Run.create(root / "base", cfg)
    train_main(cfg, run.path, run, until_step=args.fork, progress=False)
    return run.path


def requests(run, k: int, fork: int, length: int):
    from riverbed.runs.fork import ForkRequest

    # K branches of the same length from the same checkpoint: equal work per job.
    return [ForkRequest(f"b{i}-min{i / 10:.1f}", fork, length, "1-sqrt", i / 10) for i in range(k)]


def fan_out(base: Path, dest: Path, k: int, length: int, args: argparse.Namespace, contender: str) -> float:
    from riverbed.executors import ExecutorConfig
    from riverbed.runs import Run
    from riverbed.executors.branches import run_requests

    shutil.copytree(base, dest)
    run = Run.open(dest)
    reqs = requests(run, k, args.fork, length)
    jobs = min(k, args.jobs or os.cpu_count() or 1)
    executor = None if contender == "sequential" else ExecutorConfig(contender, jobs=jobs)
    t0 = time.perf_counter()
    recs = run_requests(run, reqs, progress=False, executor=executor, eval_every=length)
    wall = time.perf_counter() - t0
    assert all(r.status == "finished" for r in recs), [(r.name, r.status, r.error) for r in recs]
    return wall


def weights(run_dir: Path) -> dict[str, bytes]:
    from riverbed.checkpoints import layout

    return {b.name: layout.list_checkpoints(run_dir, b.name)[-1].path.joinpath(layout.MODEL_FILE).read_bytes()
            for b in (run_dir / layout.BRANCHES).iterdir() if b.name != layout.MAIN}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", type=int, default=4, help="decay branches (and jobs)")
    p.add_argument("--length", type=int, default=60, help="steps per decay branch")
    p.add_argument("--jobs", type=int, default=None, help="local jobs at once (default: the cores, as the CLI)")
    p.add_argument("--fork", type=int, default=20, help="main-branch steps before the fork")
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--n-layers", type=int, default=4)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--contenders", default="sequential,local,ray")
    p.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one, removed)")
    p.add_argument("--smoke", action="store_true", help="a seconds-long run at a toy size (make bench-smoke): checks the bench works, its figures mean nothing")
    args = p.parse_args()
    if args.smoke:  # ray too where it is installed: its path is the one most likely to rot
        args.k, args.length, args.fork, args.d_model, args.n_layers, args.batch, args.seq = 2, 3, 4, 32, 1, 2, 16
        args.contenders = "sequential,local" + (",ray" if importlib.util.find_spec("ray") else "")
    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="riverbed-fanout-", dir=args.dir))
    ray_init = None
    try:
        base = make_run(root, args)
        if "ray" in contenders:
            import ray

            t0 = time.perf_counter()
            ray.init(num_cpus=min(args.k, cores), include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(sys.path)}})
            ray_init = time.perf_counter() - t0
        walls, one, ws = {}, {}, {}
        for c in contenders:
            walls[c] = fan_out(base, root / f"{c}-k", args.k, args.length, args, c)
            ws[c] = weights(root / f"{c}-k")
            one[c] = fan_out(base, root / f"{c}-1", 1, 1, args, c)  # one 1-step branch: mostly start-up
        same = all(ws[c] == ws[contenders[0]] for c in contenders)
    finally:
        if ray_init is not None:
            import ray

            ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    load_after = os.getloadavg()
    seq = walls.get("sequential")
    ideal = None if seq is None else seq / min(args.k, cores)
    print(f"K={args.k} branches x {args.length} steps (d_model {args.d_model}, {args.n_layers} layers, batch "
          f"{args.batch}x{args.seq}), {cores} cores, load average {load_before[0]:.2f} before / {load_after[0]:.2f} after")
    print(f"{'contender':<12}{'wall s':>9}{'vs seq':>9}{'efficiency':>12}{'1-step job s':>14}{'start-up s':>12}")
    rows = {}
    for c in contenders:
        speed = None if seq is None else seq / walls[c]
        eff = None if ideal is None else ideal / walls[c]
        overhead = None if "sequential" not in one else one[c] - one["sequential"]
        rows[c] = {"wall_s": walls[c], "speedup": speed, "efficiency": eff, "one_job_s": one[c], "startup_s": overhead}
        fmt = lambda x, f: "-" if x is None else format(x, f)  # noqa: E731
        print(f"{c:<12}{walls[c]:>9.2f}{fmt(speed, '.2f') + 'x':>9}{fmt(eff, '.0%'):>12}{one[c]:>14.2f}{fmt(overhead, '.2f'):>12}")
    if ray_init is not None:
        print(f"ray cluster start (ray.init, not counted above): {ray_init:.2f} s")
    print(f"weights identical across contenders: {same}")
    print(json.dumps({"k": args.k, "length": args.length, "cores": cores, "load_before": load_before[0],
                      "load_after": load_after[0], "ideal_s": ideal, "ray_init_s": ray_init, "identical": same, "rows": rows}))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
