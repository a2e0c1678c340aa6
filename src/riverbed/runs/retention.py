"""The retention plan: which main-branch checkpoints planned forks, merges, emulated decays and the
spike guard need, so the trainer can delete every other one as it goes.

Rules (``riverbed plan --keep-for RULE``, or ``[train] keep = ["RULE", ...]`` in a run config)::

    merge=N,V    the N checkpoints k, k-V, ..., k-(N-1)V before every planned fork k (the PMA merge
                 that stands in for that decay) and, rolling, every checkpoint of the last N*V steps
                 (so the merge of whichever checkpoint ends up newest can still be made)
    guard=N      the newest N checkpoints (the spike guard rolls back to / merges them)
    emulate      every checkpoint in each planned decay window [k, k+D] (riverbed merge --emulate-decay)
    steps=A,B    these steps
    plan=FILE    the planned decay branches of a plan.json (riverbed plan -o); its own "keep" rules too

Always kept: every planned fork, the fork of every branch the run tree already has, each checkpoint
saved at the end of a training segment (reason "final": plan fork points and branch ends), the
newest checkpoint (resume), and the newest ``[guard] pma_count`` / ``[pma] count`` ones when those
sections are configured. A need the save grid cannot meet (a step that is never saved, a decay
window coarser than ``emulate`` accepts) is a ConfigError naming the step: the plan would otherwise
let the trainer delete or never keep a checkpoint a branch needs.

>>> r = parse_keep(["merge=3,100", "guard=2"])
>>> plan = RetentionPlan(r, decays=(PlannedDecay(1000, 200),), ckpt_every=100)
>>> sorted(plan.static_needs())
[800, 900, 1000]
>>> plan.keep([100, 200, 700, 800, 900, 1000, 1100, 1200, 1300])[1]   # pruned
[100, 200, 700]
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from riverbed.checkpoints.keep_rules import RULES, KeepRules, parse_keep
from riverbed.config import RunConfig
from riverbed.errors import ConfigError
from riverbed.schedules.budget_plan import Plan

#: What a checkpoint of a riverbed run weighs per parameter: fp32 weights + two fp32 AdamW moments.
BYTES_PER_PARAM = 12


@dataclass(frozen=True)
class PlannedDecay:
    """A decay branch the plan will fork: from main's ``fork`` for ``length`` steps."""

    fork: int
    length: int


def decays_from_plan(path: str | Path, tokens_per_step: int | None) -> tuple[tuple[PlannedDecay, ...], tuple[str, ...]]:
    """The planned decay branches of a plan.json, in steps, and the keep rules it recorded."""
    from riverbed.runs.fork_plans import load_plan, plan_branches

    plan = load_plan(path)
    decays = tuple(PlannedDecay(b["fork_step"], b["decay_steps"]) for b in plan_branches(plan, tokens_per_step))
    try:
        extra = json.loads(Path(path).read_text(encoding="utf-8")).get("keep") or []
    except (OSError, ValueError, AttributeError):
        extra = []
    return decays, tuple(extra)


@dataclass(frozen=True)
class RetentionPlan:
    """The keep rules applied to a main branch that saves every ``ckpt_every`` steps (0: only at
    segment ends) and will be forked at ``decays``."""

    rules: KeepRules
    decays: tuple[PlannedDecay, ...] = ()
    ckpt_every: int = 0
    floor: int = 1
    """Newest checkpoints always kept (the newest: resume; the guard's / PMA monitor's count)."""
    key: str = "train.keep"
    """Where the rules came from, for error messages (train.keep or --keep-for)."""

    def _saved(self, step: int) -> bool:
        forks = {d.fork for d in self.decays}
        return step in forks or (self.ckpt_every > 0 and step % self.ckpt_every == 0)

    def static_needs(self) -> dict[int, list[str]]:
        """Fixed steps the plan needs -> why; ConfigError naming the step when it is never saved."""
        needs: dict[int, list[str]] = {}

        def need(step: int, why: str, check: bool = True) -> None:
            if step < 0:
                return
            if check and not self._saved(step):
                every = f"every {self.ckpt_every} steps" if self.ckpt_every else "only at segment ends"
                raise ConfigError(f"{self.key}: {why} needs the main checkpoint at step {step}, which is never saved "
                                  f"(train.ckpt_every={self.ckpt_every}: saved {every} and at the planned forks); "
                                  f"change the rule or train.ckpt_every")
            needs.setdefault(step, []).append(why)

        for d in self.decays:
            need(d.fork, f"fork of the planned decay from {d.fork} (length {d.length})")
            if self.rules.merge is not None:
                n, v = self.rules.merge
                for i in range(n):
                    need(d.fork - i * v, f"merge={n},{v} before the fork at {d.fork}")
            if self.rules.emulate:
                gap = max(1, d.length // 4)  # riverbed.orchestration.emulate's default --max-gap
                end = d.fork + d.length
                if not self.ckpt_every or self.ckpt_every > gap or not self._saved(end):
                    missing = [s for s in range(d.fork + gap, end + 1, gap) if not self._saved(s)]
                    raise ConfigError(f"{self.key}: emulate: the decay from {d.fork} (length {d.length}) needs a checkpoint at "
                                      f"least every {gap} steps up to step {end}; steps never saved: "
                                      f"{', '.join(map(str, missing[:12]))} (train.ckpt_every={self.ckpt_every})")
                for s in range(d.fork, end + 1, self.ckpt_every):
                    need(s, f"emulate: decay window {d.fork}..{end}", check=False)
        for s in self.rules.steps:
            need(s, f"steps={s}")
        return needs

    def keep(self, existing: Iterable[int], protected: Mapping[int, str] | Iterable[int] = ()) -> tuple[dict[int, list[str]], list[int]]:
        """(step -> reasons kept, steps to prune) among the ``existing`` checkpoints.

        ``protected``: steps kept whatever the rules say (a branch's fork, a segment end), with a reason."""
        steps = sorted(set(existing))
        kept: dict[int, list[str]] = {}
        static = self.static_needs()
        prot = dict(protected) if isinstance(protected, Mapping) else {s: "protected" for s in protected}
        for s in steps:
            if s in static:
                kept.setdefault(s, []).extend(static[s])
            if s in prot:
                kept.setdefault(s, []).append(prot[s])
        newest = steps[-max(self.floor, self.rules.guard or 0):] if steps else []
        for s in newest:
            kept.setdefault(s, []).append("newest" if s == steps[-1] else f"newest {len(newest)} (guard / resume)")
        if self.rules.merge is not None and steps:
            # Rolling: a later newest checkpoint T merges T, T-V, ...; any of those can be a checkpoint
            # saved now, so every one of the last N*V steps stays (not just today's N picks).
            n, v = self.rules.merge
            for s in steps:
                if s > steps[-1] - n * v:
                    kept.setdefault(s, []).append(f"merge={n},{v} of the newest (last {n * v} steps)")
        prune = [s for s in steps if s not in kept]
        return kept, prune

    def simulate(self, last_step: int) -> tuple[list[int], list[int]]:
        """(every checkpoint main saves up to ``last_step``, those the plan keeps at the end)."""
        saved = sorted({s for s in range(self.ckpt_every, last_step + 1, self.ckpt_every)} if self.ckpt_every else set()
                       | {d.fork for d in self.decays if d.fork <= last_step} | {last_step})
        return saved, sorted(self.keep(saved)[0])


def build_retention(keep: Sequence[str], *, ckpt_every: int, tokens_per_step: int | None = None,
                    plan: str | Path | None = None, floor: int = 1, base: str | Path | None = None) -> RetentionPlan:
    """A validated :class:`RetentionPlan` from keep rules (``plan=`` paths relative to ``base``)."""
    rules = parse_keep(keep)
    path = plan if plan is not None else rules.plan
    decays: tuple[PlannedDecay, ...] = ()
    if path is not None:
        p = Path(path)
        if base is not None and not p.is_absolute():
            p = Path(base) / p
        decays, extra = decays_from_plan(p, tokens_per_step)
        if extra:
            more = parse_keep(extra, key=f"{p} keep")
            rules = KeepRules(rules.merge or more.merge, rules.guard or more.guard, rules.emulate or more.emulate,
                              tuple(sorted({*rules.steps, *more.steps})), str(p), rules.source + more.source)
    out = RetentionPlan(rules, decays, ckpt_every, max(1, floor))
    out.static_needs()  # every need is on the save grid, or a ConfigError names the step
    return out


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return str(n)  # pragma: no cover


def config_with_plan(cfg: RunConfig, plan: str | Path | None = None) -> RunConfig:
    """``cfg`` with ``riverbed train --plan``'s plan joined to its ``[train] keep`` rules (when they
    name none), validated against the save grid: a ConfigError here comes before anything is written."""
    import dataclasses

    keep = tuple(cfg.train.keep)
    if not keep:
        return cfg
    if plan is not None and parse_keep(keep).plan is None:
        keep = (*keep, f"plan={Path(plan).resolve()}")
        cfg = cfg.replace(train=dataclasses.replace(cfg.train, keep=keep))
    build_retention(keep, ckpt_every=cfg.train.ckpt_every, tokens_per_step=cfg.train.tokens_per_step)
    return cfg


def plan_retention(plan: Plan, keep: Sequence[str], *, ckpt_every: int, tokens_per_step: int | None = None,
                   n_params: int | None = None, main_steps: int | None = None) -> dict[str, Any]:
    """What ``riverbed plan --keep-for`` reports for a Plan: the checkpoints kept and why, against all
    main saves, and their disk space (``12 bytes x n_params`` each: fp32 weights + AdamW moments)."""
    from riverbed.runs.fork_plans import plan_branches

    decays = tuple(PlannedDecay(b["fork_step"], b["decay_steps"]) for b in plan_branches(plan, tokens_per_step))
    rp = RetentionPlan(parse_keep(keep, key="--keep-for"), decays, ckpt_every, key="--keep-for")
    rp.static_needs()
    last = main_steps if main_steps is not None else max(d.fork + (d.length if rp.rules.emulate else 0) for d in decays)
    saved, kept = rp.simulate(last)
    reasons = rp.keep(saved)[0]
    per = BYTES_PER_PARAM * n_params if n_params else None
    return {"keep": list(rp.rules.source), "ckpt_every": ckpt_every, "main_steps": last,
            "saved": len(saved), "kept": len(kept), "kept_steps": kept,
            "why": {str(s): reasons[s] for s in kept},
            "bytes_per_checkpoint": per, "kept_bytes": per * len(kept) if per else None,
            "all_bytes": per * len(saved) if per else None}
