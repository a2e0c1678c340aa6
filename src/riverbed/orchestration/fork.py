"""Rewind & decay: train decay branches forked from saved main-branch checkpoints.

A decay branch starts from the main checkpoint ``step_k`` (weights, AdamW state, RNG; the
global step and token count continue from k), follows ``DecayBranch(main, k, D, shape,
min_ratio)`` -- the main LR at k decayed over D steps -- and ends with a checkpoint and a
held-out evaluation: the finished model for a budget of k + D steps. The main branch is only
read, never written.

Every request is validated first (:func:`riverbed.runs.fork.validate`: the fork step must be a
saved checkpoint, the name free, the shape known, the length positive), so a bad request
leaves the run exactly as it was.

>>> from riverbed import Run, fork_branches                         # doctest: +SKIP
>>> fork_branches(Run.open("runs/x"), 800, "1-sqrt", "20%")        # doctest: +SKIP

``riverbed.fork_branches`` (riverbed.executors.branches) is the entry point: it plans the
requests and trains them here (:func:`run_requests`) or as executor jobs.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from riverbed.checkpoints import layout
from riverbed.config import RunConfig
from riverbed.data import load_dataset
from riverbed.data.dataset import TokenData
from riverbed.errors import LockedError, RiverbedError
from riverbed.runs.config_io import load_run_config
from riverbed.runs.fork import ForkRequest, branch_config, branch_eval_every, fork_record, pending_requests
from riverbed.runs.manifest import BranchRecord, Point
from riverbed.runs.run import Run
from riverbed.schedules import DecayBranch
from riverbed.training.callbacks import Callback
from riverbed.training.manifest_callback import ManifestCallback


def train_fork(run: Run, req: ForkRequest, schedule: DecayBranch, *, cfg: RunConfig | None = None, progress: bool = True,
               data: TokenData | None = None, callbacks: Sequence[Callback] = ()) -> BranchRecord:
    """Train one validated request to its end and record its final point."""
    from riverbed.training import train_branch  # lazy: loads torch, which importing this module must not

    if cfg is None:
        cfg = load_run_config(run.path)
    ref = run.checkpoint(req.from_step, layout.MAIN)
    record = fork_record(run, req, schedule)
    is_new = req.name not in run.manifest.branches
    try:
        with run.training(record):
            res = train_branch(cfg, run.path, req.name, schedule, until_step=req.from_step + req.length,
                               init=ref.path, callbacks=(ManifestCallback(run, req.name), *callbacks),
                               progress=progress, data=data)
            final = Point(res.step, res.tokens, res.flops, res.last_eval_loss,
                          str(Path(res.checkpoint).relative_to(run.path)) if res.checkpoint else None)
            if res.stopped is None and res.step >= req.from_step + req.length:
                run.finish_branch(req.name, final)
            else:
                run.set_progress(req.name, final)
    except LockedError:
        raise  # another process is training this branch: its files are not ours to remove
    except RiverbedError:
        # Bad input found while starting (e.g. a corrupt tensor file): leave no trace of a branch
        # that never trained.
        if is_new and not layout.list_checkpoints(run.path, req.name):
            run.remove_branch(req.name)
            shutil.rmtree(layout.branch_dir(run.path, req.name), ignore_errors=True)
        raise
    return run.branch(req.name)


def run_requests(run: Run, requests: Sequence[ForkRequest], *, progress: bool = True, cfg: RunConfig | None = None,
                 data: TokenData | None = None, allow_resume: bool = True, skip_finished: bool = False,
                 eval_every: int | None = None) -> list[BranchRecord]:
    """Validate all requests, then train each in this process (oldest fork first). Returns the
    branch records.

    ``skip_finished``: a request whose branch already finished with the same schedule is
    returned as it is instead of being an error (re-running a plan). ``eval_every``: the
    branches' evaluation cadence in steps (0: see :func:`branch_eval_every`); None keeps the
    run config's ``train.eval_every``. To train each branch as an independent job (a local
    pool, Ray, Slurm) call :func:`riverbed.executors.branches.run_requests`, which sits above
    this module.
    """
    if eval_every is not None:
        branch_eval_every(1, eval_every)  # a bad value is refused before anything trains
    done, checked = pending_requests(run, requests, allow_resume=allow_resume, skip_finished=skip_finished)
    if checked and cfg is None:
        cfg = load_run_config(run.path)
    if checked and data is None:
        data = load_dataset(cfg.data)
    for req, schedule, _resume in sorted(checked, key=lambda c: (c[0].from_step, c[0].length)):
        done.append(train_fork(run, req, schedule, cfg=branch_config(cfg, req, eval_every), progress=progress, data=data))
    return done

