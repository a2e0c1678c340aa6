"""Decay branches: :func:`fork_branches` (``riverbed.fork_branches``, the library behind
``riverbed branch``), in this process or on an executor: the run-tree entry point of scale-out.

:func:`run_requests` is :func:`riverbed.orchestration.fork.run_requests` with an ``executor``: without
one it trains in this process; with one (a backend name "local" | "ray" | "slurm", an
ExecutorConfig or an Executor) each validated branch becomes one job that reads its fork
checkpoint and writes only its own branch directory (riverbed.executors.fanout). It lives
here, above riverbed.runs, so the run tree never imports its executors (one way down).

>>> from riverbed.runs import Run                                               # doctest: +SKIP
>>> from riverbed.runs.fork import plan_requests                                # doctest: +SKIP
>>> run = Run.open("runs/tiny")                                                 # doctest: +SKIP
>>> run_requests(run, plan_requests(run, [400, 800], "1-sqrt", "20%"), executor="local")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from riverbed.config import RunConfig
from riverbed.data.dataset import TokenData
from riverbed.errors import RunError
from riverbed.executors import warm_up
from riverbed.executors.base import Executor, ExecutorConfig
from riverbed.executors.commands import run_command_branches
from riverbed.executors.fanout import fan_out
from riverbed.orchestration import fork as train_here
from riverbed.runs import fork
from riverbed.runs.fork_plans import requests_from_plan
from riverbed.runs.manifest import BranchRecord
from riverbed.runs.run import Run
from riverbed.schedules import Schedule, spec_from_text

#: What ``executor=`` accepts: a backend name ("local" | "ray" | "slurm"), its config, or a live executor.
ExecutorSpec = str | ExecutorConfig | Executor


def run_requests(run: Run, requests: Sequence[fork.ForkRequest], *, executor: ExecutorSpec | None = None, wait: bool = True,
                 progress: bool = True, cfg: RunConfig | None = None, data: TokenData | None = None, allow_resume: bool = True,
                 skip_finished: bool = False, eval_every: int | None = None) -> list[BranchRecord]:
    """Train ``requests`` here (``executor=None``) or as jobs of ``executor`` (``wait=False``:
    return once they are queued; ``cfg`` and ``data`` are then the run's own, read by each job)."""
    if executor is None:
        return train_here.run_requests(run, requests, progress=progress, cfg=cfg, data=data, allow_resume=allow_resume,
                                       skip_finished=skip_finished, eval_every=eval_every)
    if eval_every is not None:
        fork.branch_eval_every(1, eval_every)  # a bad value is refused before anything is queued
    warm_up(executor)  # local: the fork server imports torch on another core while the requests are validated
    done, checked = fork.pending_requests(run, requests, allow_resume=allow_resume, skip_finished=skip_finished)
    return done + fan_out(run, checked, executor, eval_every=eval_every, progress=progress, wait=wait)


def fork_branches(
    run: Run | str | os.PathLike[str],
    from_step: int | Sequence[int] | None = None,
    shape: str | None = None,
    length: int | str | None = None,
    *,
    plan: str | os.PathLike[str] | None = None,
    min_ratio: float | None = None,
    name: str | None = None,
    eval_every: int | None = None,
    executor: ExecutorSpec | None = None,
    wait: bool = True,
    progress: bool = True,
    command: str | None = None,
    schedule: Schedule | Mapping[str, object] | str | None = None,
    **schedule_fields: float | int,
) -> list[BranchRecord]:
    """Fork decay branch(es) from ``run``'s main checkpoint(s) at ``from_step`` and train them;
    returns their records (a re-run of a plan returns the finished ones as they are).

    ``shape``: the decay shape (default "1-sqrt"). ``length``: steps (int or "200 steps"), tokens
    ("2M tok") or a percentage of the budget (default "20%"). ``name`` defaults to ``<shape>-from<step>-len<length>`` (with several steps,
    ``<name>-<step>``). ``plan``: a ``riverbed plan`` JSON whose every decay branch is forked
    instead (then give no ``from_step``). ``eval_every``: each branch's evaluation cadence in
    steps (0: about 10 evaluations per branch; None: the run config's). ``executor``: train each
    branch as a job ("local", "ray", "slurm", an ExecutorConfig or an Executor; None: here, one
    after the other); ``wait=False`` returns once Slurm jobs are queued. ``schedule_fields``:
    other DecayBranch fields (``half_life``, ``stages``). ``command``: train each branch with the
    user's own command instead of riverbed's trainer (riverbed.orchestration.command_branch: its
    ``{fork}``, ``{schedule}``, ``{out}`` placeholders; the way to branch an adopted run).
    ``schedule``: a whole-run schedule to follow from the fork instead of a decay shape (a Schedule,
    a spec dict, inline JSON or a TOML/JSON file, e.g. what ``riverbed predict optimize`` writes):
    one branch, forked at ``from_step`` or by default at the newest main checkpoint before the
    schedule leaves the main branch's (:func:`riverbed.runs.fork.schedule_request`). Every
    request is validated before anything trains; a bad one leaves the run as it was.
    """
    r = run if isinstance(run, Run) else Run.open(run)
    if schedule is not None:
        given = [f for f, v in (("--shape", shape), ("--length", length), ("--min-ratio", min_ratio), ("--plan", plan))
                 if v is not None] + [f"--{k.replace('_', '-')}" for k in schedule_fields]
        if given:
            raise RunError(f"--schedule gives the whole LR schedule after the fork; drop {', '.join(given)}")
        if not (from_step is None or isinstance(from_step, int)):
            steps = list(from_step)
            if len(steps) != 1:
                raise RunError(f"--schedule forks one branch: give one --from step, got {len(steps)}")
            from_step = steps[0]
        spec = spec_from_text(schedule) if isinstance(schedule, str) else schedule
        requests = [fork.schedule_request(r, spec, from_step=from_step, name=name)]
    elif plan is not None:
        given = [f for f, v in (("--from", from_step), ("--shape", shape), ("--length", length), ("--name", name),
                                ("--min-ratio", min_ratio)) if v is not None]
        if given:
            raise RunError(f"--plan takes the branches from the plan; drop {', '.join(given)}")
        requests = requests_from_plan(r, Path(plan))
    else:
        if from_step is None:
            raise RunError("riverbed branch needs --from (or --plan plan.json)")
        steps = [from_step] if isinstance(from_step, int) else list(from_step)
        requests = fork.plan_requests(r, steps, shape or "1-sqrt", "20%" if length is None else length, min_ratio=min_ratio,
                                      name=name, extra=dict(schedule_fields))
    # A plan, or a fan-out that partly failed, is re-run as it was: its finished branches are kept.
    # Local and Ray jobs end with this process, so only Slurm jobs can be left queued (wait=False).
    detached = (executor.detached if isinstance(executor, Executor)
                else (executor if isinstance(executor, str) else executor.backend if executor else None) == "slurm")
    if command is not None:
        return run_command_branches(r, requests, command, executor=executor, wait=wait or not detached, progress=progress)
    if "adopted" in r.manifest.config:
        raise RunError(f"{r.path} was adopted (its checkpoints were trained elsewhere, riverbed has no config to train "
                       "with): train its decay branches with your own code, --command 'CMD {fork} {schedule} {out}'")
    return run_requests(r, requests, executor=executor, wait=wait or not detached, progress=progress,
                        eval_every=eval_every, skip_finished=plan is not None or executor is not None)
