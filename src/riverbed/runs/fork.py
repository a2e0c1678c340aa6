"""Rewind & decay requests: which decay branches to fork from saved main-branch checkpoints.

A decay branch starts from the main checkpoint ``step_k`` (weights, AdamW state, RNG; the
global step and token count continue from k), follows ``DecayBranch(main, k, D, shape,
min_ratio)`` -- the main LR at k decayed over D steps -- and ends with a checkpoint and a
held-out evaluation: the finished model for a budget of k + D steps. The main branch is only
read, never written.

Every request is validated before anything is trained or recorded (the fork step must be a
saved checkpoint, the name free, the shape known, the length positive), so a bad request
leaves the run exactly as it was.

This module is the run tree's side of a fork (requests, their validation, the manifest record);
training them is :mod:`riverbed.orchestration.fork`.

>>> from riverbed.runs import Run                                           # doctest: +SKIP
>>> validate(Run.open("runs/x"), plan_requests(Run.open("runs/x"), [800], "1-sqrt", "20%"))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from riverbed.checkpoints import layout
from riverbed.config import RunConfig
from riverbed.errors import CheckpointError, ConfigError, RiverbedWarning, RunError
from riverbed.runs.manifest import BranchRecord, Point
from riverbed.runs.metrics import read_metrics
from riverbed.runs.run import Run, point_from_state, read_state
from riverbed.schedules import DecayBranch, Schedule, schedule_from_spec, schedule_to_spec
from riverbed.schedules.wsd import TABULATED
from riverbed.units import split_quantity

_TOKEN_UNITS = ("tok", "tokens", "token")
_STEP_UNITS = ("steps", "step")
_PLAIN_INT_RE = re.compile(r"^\s*[+-]?[0-9]+\s*$")
_LENGTH_HELP = "give a unit: '2M tok', '2000 steps' or '20%'"


@dataclass(frozen=True)
class ForkRequest:
    """One decay branch to train: from main's ``from_step`` for ``length`` steps."""

    name: str
    from_step: int
    length: int
    shape: str
    min_ratio: float | None = None
    extra: tuple[tuple[str, Any], ...] = ()  # other DecayBranch fields (half_life, stages)


def parse_length(text: str | int, from_step: int, tokens_per_step: int, *, field: str = "--length") -> int:
    """Decay length in steps from ``"2000 steps"`` / ``"200"``, ``"1.5M tok"`` / ``"65536tok"``
    (tokens, rounded up to whole steps) or ``"20%"`` (that fraction of the budget
    ``from_step + D``, i.e. ``D = round(p * k / (1 - p))``: the "decay the last 20 % of
    training" convention).

    A bare plain integer (``200``) is steps, as it always was; any other bare number (``2M``,
    ``1e6``, ``1.5``) is ambiguous -- ``2M`` once silently meant two million steps to a user who
    meant tokens -- and is refused with a request for a unit.

    >>> parse_length("20%", 800, 64), parse_length("128 tok", 800, 64), parse_length(50, 800, 64)
    (200, 2, 50)
    >>> parse_length("2K steps", 800, 64), parse_length("200", 800, 64)
    (2000, 200)
    """
    if isinstance(text, bool):
        raise ConfigError(f"{field}={text!r}: expected a number of steps, tokens ('2M tok') or a percentage ('20%')")
    if isinstance(text, int):
        steps = text
    else:
        s = str(text).strip()
        if s.endswith("%"):
            try:
                p = float(s[:-1]) / 100
            except ValueError:
                raise ConfigError(f"{field}={text!r}: not a percentage") from None
            if not 0 < p < 1:
                raise ConfigError(f"{field}={text!r}: a decay of {s} of the budget is impossible (expected 0% < p < 100%)")
            steps = round(p * from_step / (1 - p))
            if steps < 1:
                raise ConfigError(f"{field}={text!r}: {s} of a budget forked at step {from_step} is less than one step")
        else:
            try:
                value, _suffix, unit = split_quantity(s, (*_TOKEN_UNITS, *_STEP_UNITS), field=field)
            except ConfigError as exc:
                raise ConfigError(f"{exc}; {_LENGTH_HELP}") from None
            if not unit and not _PLAIN_INT_RE.match(s):
                raise ConfigError(f"{field}={text!r} is ambiguous (steps or tokens?): {_LENGTH_HELP}")
            if value <= 0:
                raise ConfigError(f"{field}={text!r}: the decay length must be positive")
            if unit in _TOKEN_UNITS and tokens_per_step < 1:
                raise ConfigError(f"{field}={text!r}: this run's tokens per step are unknown (adopted without token "
                                  "counts); give the length in steps or '20%'")
            if unit in _TOKEN_UNITS:  # tokens -> whole steps (ceil: at least that many tokens)
                steps = math.ceil(value / tokens_per_step)
            elif value != int(value):
                raise ConfigError(f"{field}={text!r}: a length in steps must be a whole number")
            else:
                steps = int(value)
    if steps < 1:
        raise ConfigError(f"{field}={text!r}: the decay length must be at least one step")
    return steps


def default_name(shape: str, from_step: int, length: int) -> str:
    return f"{shape}-from{from_step}-len{length}"


def check_name(name: str) -> None:
    """A new branch's name: a valid branch name (riverbed.checkpoints.layout) other than the root's."""
    layout.check_branch_name(name)
    if name == layout.MAIN:
        raise RunError(f"branch name {name!r}: 'main' is the run's root branch; choose another name")


def decay_schedule(run: Run, req: ForkRequest) -> DecayBranch:
    """The DecayBranch of a request over the main branch's schedule (shape errors name the field)."""
    main_spec = _main_schedule_spec(run)
    kw: dict[str, Any] = dict(req.extra)
    if req.min_ratio is not None:
        kw["min_ratio"] = req.min_ratio
    return DecayBranch(schedule_from_spec(main_spec), req.from_step, req.length, req.shape, **kw)


def _main_schedule_spec(run: Run) -> dict[str, Any]:
    m = run.manifest
    if layout.MAIN in m.branches and m.branches[layout.MAIN].schedule:
        return dict(m.branches[layout.MAIN].schedule)
    return dict(m.config.get("schedule") or {})


def validate(run: Run, requests: Sequence[ForkRequest], *, allow_resume: bool = True) -> list[tuple[ForkRequest, DecayBranch, bool]]:
    """Check every request; returns (request, schedule, resume?) triples. Nothing is written."""
    out = []
    seen: set[str] = set()
    branches = run.manifest.branches
    for req in requests:
        check_name(req.name)
        if req.name in seen:
            raise RunError(f"branch name {req.name!r} is requested twice")
        seen.add(req.name)
        ref = run.checkpoint(req.from_step, layout.MAIN)  # RunError listing the saved steps
        _check_checkpoint_files(ref.path)
        schedule = decay_schedule(run, req)
        resume = False
        if req.name in branches:
            old = branches[req.name]
            same = old.schedule == schedule_to_spec(schedule) and old.parent == layout.MAIN
            if not (allow_resume and same and old.status != "finished"):
                state = f"{old.status}" + (f", held-out loss {old.final.eval_loss:.4f}" if old.final and old.final.eval_loss else "")
                raise RunError(f"{run.path}: a branch named {req.name!r} already exists ({state}); choose another --name")
            resume = True
        out.append((req, schedule, resume))
    return out


def _check_checkpoint_files(path: Path) -> None:
    """Cheap integrity check of a fork checkpoint: state.json parses, tensor file headers read."""
    read_state(path)
    from riverbed.checkpoints.state import read_safetensors_metadata  # lazy: loads torch, which importing this module must not

    for name in (layout.MODEL_FILE, layout.OPTIMIZER_FILE):
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"{f}: missing (fork checkpoint incomplete)")
        read_safetensors_metadata(f)
    from riverbed.checkpoints.finite import check_file_finite  # lazy: loads torch, which importing this module must not

    check_file_finite(path)  # NaN/inf weights: name the newest finite checkpoint instead


def loss_at(run: Run, branch: str, step: int) -> float | None:
    """The held-out loss logged for ``branch`` at exactly ``step`` (None if not evaluated there)."""
    found = None
    for row in read_metrics(layout.metrics_path(run.path, branch)):
        if row.get("kind") == "eval" and row.get("step") == step and isinstance(row.get("eval_loss"), (int, float)):
            found = float(row["eval_loss"])
    return found


def fork_record(run: Run, req: ForkRequest, schedule: DecayBranch) -> BranchRecord:
    """The manifest record of a validated request: its schedule and fork point (not yet written)."""
    from riverbed.schedules import schedule_to_spec

    ref = run.checkpoint(req.from_step, layout.MAIN)
    fork = point_from_state(read_state(ref.path), str(ref.path.relative_to(run.path)))
    exact = loss_at(run, layout.MAIN, req.from_step)
    fork = Point(fork.step, fork.tokens, fork.flops, exact, fork.checkpoint)
    return BranchRecord(req.name, "decay", schedule_to_spec(schedule), parent=layout.MAIN, fork=fork)


def tokens_per_step(run: Run) -> int:
    """Tokens per optimizer step; 0 when unknown (a run adopted without token counts)."""
    m = run.manifest
    if m.model.get("tokens_per_step"):
        return int(m.model["tokens_per_step"])
    if "adopted" in m.config:
        return 0
    train = m.config.get("train") or {}
    return int(train.get("batch_size", 32)) * int(train.get("seq_len", 128))


def plan_requests(run: Run, from_steps: Sequence[int], shape: str, length: int | str, *, min_ratio: float | None = None,
                  name: str | None = None, extra: dict[str, Any] | None = None) -> list[ForkRequest]:
    """Requests for one decay shape/length forked at each of ``from_steps`` (not yet validated)."""
    if not from_steps:
        raise RunError("--from: give at least one main-branch step to fork from")
    tps = tokens_per_step(run)
    reqs = []
    for step in from_steps:
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise RunError(f"--from: {step!r} is not a step number (>= 0)")
        n = parse_length(length, step, tps)
        if n > step:
            # Allowed (a short main branch may be decayed long), but usually a unit mix-up.
            warnings.warn(f"branch from step {step}: the decay ({n} steps, --length {length}) is longer than the main "
                          f"branch before its fork ({step} steps)", RiverbedWarning, stacklevel=2)
        if name is None:
            nm = default_name(shape, step, n)
        else:
            nm = name if len(from_steps) == 1 else f"{name}-{step}"
        reqs.append(ForkRequest(nm, step, n, shape, min_ratio, tuple(sorted((extra or {}).items()))))
    return reqs


#: How far (in LR multiplier) a schedule may stray from the main branch's before the fork and still
#: be the same schedule there: float noise, not a different LR.
SPLICE_TOLERANCE = 1e-6


def departure_step(main: Schedule, schedule: Schedule, end: int) -> int:
    """The first step below ``end`` where ``schedule``'s multiplier differs from ``main``'s (``end``
    if none does): a branch forked at or before it follows ``schedule`` exactly.

    >>> from riverbed.schedules import WarmupStable, WSD
    >>> departure_step(WarmupStable(2), WSD(warmup=2, stable=5, decay=3), 10)
    7
    """
    for s in range(end):
        if abs(schedule.multiplier(s) - main.multiplier(s)) > SPLICE_TOLERANCE:
            return s
    return end


def schedule_request(run: Run, schedule: Schedule | Mapping[str, Any], *, from_step: int | None = None,
                     name: str | None = None) -> ForkRequest:
    """The decay branch that trains ``schedule`` (a whole-run schedule, e.g. the one ``riverbed
    predict optimize`` writes) from a main checkpoint: the schedule must equal the main branch's up
    to the fork, and the branch follows it from there to its end (a ``tabulated`` DecayBranch).
    ``from_step`` defaults to the newest saved main checkpoint at or before the step where the
    schedule leaves the main branch's; a later one is refused, naming that step."""
    sched = schedule if isinstance(schedule, Schedule) else schedule_from_spec(dict(schedule), where="--schedule")
    end = sched.total_steps
    if end is None:
        raise ConfigError("--schedule: the schedule has no end (total steps); a branch needs one, e.g. a tabulated or "
                          "wsd spec with its steps")
    main = schedule_from_spec(_main_schedule_spec(run), where="main schedule")
    leaves = departure_step(main, sched, end)
    saved = [c.step for c in run.checkpoints(layout.MAIN)]
    if from_step is None:
        ok = [s for s in saved if s <= leaves and s < end]
        if not ok:
            raise RunError(f"--schedule: it leaves the main branch's schedule at step {leaves} (multiplier "
                           f"{sched.multiplier(min(leaves, end - 1)):.6g} against main's {main.multiplier(min(leaves, end - 1)):.6g}); "
                           f"no main checkpoint is saved at or before it (saved: {', '.join(map(str, saved)) or 'none'})")
        from_step = ok[-1]
    if isinstance(from_step, bool) or not isinstance(from_step, int) or from_step < 0:
        raise RunError(f"--from: {from_step!r} is not a step number (>= 0)")
    if from_step >= end:
        raise RunError(f"--from {from_step}: the schedule ends at step {end}, nothing is left to train after the fork")
    if from_step > leaves:
        raise RunError(f"--from {from_step}: the schedule leaves the main branch's at step {leaves} (multiplier "
                       f"{sched.multiplier(leaves):.6g} against main's {main.multiplier(leaves):.6g}), so a branch forked "
                       f"later would not follow it; fork at or before step {leaves}")
    table = tuple(sched.multiplier(s) for s in range(from_step, end))
    length = end - from_step
    return ForkRequest(name or default_name(TABULATED, from_step, length), from_step, length, TABULATED, None,
                       (("table", table),))


#: ``eval_every=0`` evaluates each branch every length // EVALS_PER_BRANCH steps: enough points
#: to draw a decay branch's drop (an eval cadence made for the long main branch gives a short
#: decay one or two points).
EVALS_PER_BRANCH = 10


def branch_eval_every(length: int, eval_every: int) -> int:
    """Held-out evaluation cadence of a branch of ``length`` steps; 0 = about 10 evaluations.

    >>> branch_eval_every(25, 0), branch_eval_every(5, 0), branch_eval_every(25, 4)
    (2, 1, 4)
    """
    if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 0:
        raise RunError(f"--eval-every {eval_every!r}: expected a number of steps >= 1 (0 = about "
                       f"{EVALS_PER_BRANCH} evaluations per branch)")
    return eval_every or max(1, length // EVALS_PER_BRANCH)


def pending_requests(run: Run, requests: Sequence[ForkRequest], *, allow_resume: bool = True,
                     skip_finished: bool = False) -> tuple[list[BranchRecord], list[tuple[ForkRequest, DecayBranch, bool]]]:
    """Split ``requests`` into branches already finished with the same schedule (returned as
    they are when ``skip_finished``: re-running a plan) and validated (request, schedule, resume)
    triples still to train; a bad request is refused before anything trains."""
    todo = []
    done: list[BranchRecord] = []
    for req in requests:
        old = run.manifest.branches.get(req.name)
        if skip_finished and old is not None and old.status == "finished" and old.schedule == schedule_to_spec(decay_schedule(run, req)):
            done.append(old)
        else:
            todo.append(req)
    return done, validate(run, todo, allow_resume=allow_resume)


def branch_config(cfg: RunConfig, req: ForkRequest, eval_every: int | None) -> RunConfig:
    """The run config a branch trains under: the run's, with the branch's evaluation cadence."""
    if eval_every is None:
        return cfg
    return replace(cfg, train=replace(cfg.train, eval_every=branch_eval_every(req.length, eval_every)))
