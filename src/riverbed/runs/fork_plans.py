"""A plan (``riverbed plan`` -> plan.json) as decay-branch requests for a run.

Two commands drive a whole run tree from one plan, each resumable:

1. ``riverbed train CONFIG --plan plan.json`` trains the main branch to the plan's last fork
   point, with a checkpoint at every fork point (they are segment stops);
2. ``riverbed branch RUN --plan plan.json`` forks and trains every decay branch of the plan;
   re-running it skips finished branches and resumes interrupted ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from riverbed.io.input_files import read_text
from riverbed.errors import ConfigError
from riverbed.runs.fork import ForkRequest, _main_schedule_spec, check_name, default_name, tokens_per_step
from riverbed.runs.run import Run
from riverbed.schedules import schedule_from_spec, schedule_to_spec
from riverbed.schedules.budget_plan import Plan


def load_plan(path: str | Path) -> Plan:
    """The Plan object of a plan.json; a missing or malformed file names itself."""
    path = Path(path)
    text = read_text(path, "--plan")
    try:
        json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ConfigError(f"--plan {path}: not valid JSON: {exc}") from None

    try:
        return Plan.from_json(text)
    except ConfigError as exc:
        raise ConfigError(f"--plan {path}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"--plan {path}: not a riverbed plan: {exc!r}") from None


def _to_steps(plan: Plan, positions: int, tokens_per_step: int | None) -> int:
    if plan.position_unit == "steps":
        return int(positions)
    if tokens_per_step is None:
        raise ConfigError("--plan: the plan counts tokens; the run's tokens per step are needed to convert them")
    return -(-int(positions) // tokens_per_step)  # ceil: at least the planned tokens


def plan_branches(plan: Plan, tokens_per_step: int | None = None) -> list[dict[str, Any]]:
    """[{fork_step, decay_steps, shape, min_ratio}] of a Plan's WSD decay branches, in steps."""
    if plan.tokens_per_step is not None and tokens_per_step is not None and plan.tokens_per_step != tokens_per_step:
        raise ConfigError(f"--plan: tokens_per_step={plan.tokens_per_step} but the run trains {tokens_per_step} tokens per step")
    return [{"fork_step": _to_steps(plan, r.fork, tokens_per_step),
             "decay_steps": max(1, _to_steps(plan, r.decay, tokens_per_step)),
             "shape": plan.shape, "min_ratio": plan.min_ratio} for r in plan.rows]


def plan_fork_steps(path: str | Path, tokens_per_step: int | None = None) -> list[int]:
    """Every fork point of a plan, ascending, in steps (the main branch's segment stops)."""
    return sorted({b["fork_step"] for b in plan_branches(load_plan(path), tokens_per_step)})


def check_main_schedule(plan: Plan, run_main_spec: dict[str, Any], path: str | Path) -> None:
    """The plan's forks assume its own main schedule; refuse a run whose main differs."""
    planned = schedule_to_spec(plan.main_schedule())
    if plan.position_unit != "steps" or not run_main_spec:
        return
    actual = schedule_to_spec(schedule_from_spec(dict(run_main_spec)))
    if actual.get("type") == planned["type"] and actual.get("warmup", 0) != planned.get("warmup", 0):
        raise ConfigError(f"--plan {path}: warmup={planned.get('warmup', 0)} but the run's main schedule has "
                          f"warmup={actual.get('warmup', 0)}; re-plan with the run's warmup")


def requests_from_plan(run: Run, path: str | Path | Plan) -> list[ForkRequest]:
    """One ForkRequest per decay branch of a plan (a plan.json path or a Plan), named
    ``<shape>-from<k>-len<D>``."""
    plan = load_plan(path) if isinstance(path, (str, Path)) else path
    check_main_schedule(plan, _main_schedule_spec(run), path)
    reqs = []
    for b in plan_branches(plan, tokens_per_step(run)):
        name = default_name(b["shape"], b["fork_step"], b["decay_steps"])
        check_name(name)
        reqs.append(ForkRequest(name, b["fork_step"], b["decay_steps"], b["shape"], b["min_ratio"]))
    if not reqs:
        raise ConfigError(f"--plan {path}: the plan has no decay branches")
    return reqs
