"""Which merge recipe for this run? Every (method, N, V) of a grid, merged in memory and evaluated.

For a run's branch at step ``at`` (default: its newest checkpoint), each recipe of the grid --
method (SMA / EMA / WMA), N (``last``: how many checkpoints) and V (``every``: how far apart, in
steps) -- picks its checkpoints with the one selection rule (:func:`riverbed.merging.select.
pick_spaced`, as ``riverbed merge --run`` does), merges them with the one in-memory merge
(:func:`riverbed.merging.memory.merge_state_dicts`, the streaming engine's arithmetic, output in
the inputs' dtype) and is evaluated by the one held-out evaluator
(:class:`riverbed.training.evaluate.HeldoutEvaluator`, as ``riverbed eval``). So each cell's loss
is exactly what ``riverbed merge --run RUN --last N --every V --method M`` then ``riverbed eval``
of the output would print. A recipe the run has too few checkpoints for is a cell without a loss.

References: the loss of the checkpoint at ``at`` itself, and, where a finished decay branch was
forked at ``at``, its decayed loss (what merging is meant to stand in for).

Memory: every checkpoint some recipe uses is loaded once and kept while the grid is evaluated.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from riverbed.checkpoints import layout
from riverbed.errors import MergeError
from riverbed.io.progress import Progress
from riverbed.checkpoints.formats import load_tensors, open_input
from riverbed.merging.memory import merge_state_dicts
from riverbed.merging.select import pick_spaced
from riverbed.merging.weights import weights_for
from riverbed.runs.run import Run
from riverbed.runs.config_io import load_run_config
from riverbed.training.evaluate import HeldoutEvaluator

METHODS = ("sma", "ema", "wma")


@dataclass(frozen=True)
class SweepCell:
    """One recipe: its checkpoints (steps, oldest first), weights and held-out loss (None: the run
    has fewer than ``n`` checkpoints ``every`` steps apart up to the sweep's step)."""

    method: str
    n: int
    every: int
    eval_loss: float | None
    steps: tuple[int, ...] = ()
    weights: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        loss = self.eval_loss if self.eval_loss is not None and math.isfinite(self.eval_loss) else None
        return {"method": self.method, "N": self.n, "V": self.every, "eval_loss": loss, "steps": list(self.steps),
                "weights": list(self.weights)}


@dataclass(frozen=True)
class SweepResult:
    """The grid's cells with the references: the checkpoint at ``at`` and a decay forked there."""

    run: str
    branch: str
    at: int
    alpha: float
    cells: tuple[SweepCell, ...]
    last_loss: float
    decayed_loss: float | None = None
    decayed_branch: str | None = None

    @property
    def best(self) -> SweepCell | None:
        done = [c for c in self.cells if c.eval_loss is not None and math.isfinite(c.eval_loss)]
        return min(done, key=lambda c: c.eval_loss) if done else None  # type: ignore[arg-type,return-value]

    def to_dict(self) -> dict[str, Any]:
        best = self.best
        return {"run": self.run, "branch": self.branch, "at": self.at, "ema_alpha": self.alpha,
                "cells": [c.to_dict() for c in self.cells], "best": best.to_dict() if best else None,
                "last_checkpoint": {"step": self.at, "eval_loss": self.last_loss},
                "decayed": None if self.decayed_loss is None else {"branch": self.decayed_branch, "eval_loss": self.decayed_loss}}


def _positive_ints(name: str, values: Sequence[int]) -> tuple[int, ...]:
    vals = tuple(values)
    if not vals or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in vals):
        raise MergeError(f"{name} must be positive integers, got {list(vals)}")
    return tuple(dict.fromkeys(vals))


def merge_sweep(run: str | os.PathLike[str], *, last: Sequence[int], every: Sequence[int], methods: Sequence[str] = METHODS,
                at: int | None = None, alpha: float = 0.2, branch: str = layout.MAIN, progress: bool = True) -> SweepResult:
    """Evaluate every merge recipe of the grid ``methods`` x ``last`` (N) x ``every`` (V, steps)
    on ``run``'s held-out data, from ``branch``'s checkpoints up to step ``at`` (see the module doc).

    >>> # r = merge_sweep("runs/r1", last=[2, 4, 8], every=[100, 200]); r.best.method, r.best.n, r.best.every
    """
    ns, vs = _positive_ints("--last", last), _positive_ints("--every", every)
    methods = tuple(dict.fromkeys(methods))
    bad = [m for m in methods if m not in METHODS]
    if not methods or bad:
        raise MergeError(f"--method must be among {', '.join(METHODS)}; got {', '.join(bad) or 'none'}")
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0.0 < alpha <= 1.0:
        raise MergeError(f"--alpha must be in (0, 1], got {alpha!r}")
    r = Run.open(run)  # RunError naming the directory if it is not a run
    found = [c for c in r.checkpoints(branch) if at is None or c.step <= at]
    if not found:
        have = ", ".join(str(c.step) for c in r.checkpoints(branch)) or "none"
        raise MergeError(f"run {run} branch {branch!r} has no checkpoint at or before step {at} (checkpoints: {have})")
    at_step = found[-1].step
    if at is not None and at_step != at:
        raise MergeError(f"run {run} branch {branch!r} has no checkpoint at step {at} (the nearest before is {at_step})")
    picks = {(n, v): pick_spaced(found, last=n, every=v, key=lambda c: c.step) for n in ns for v in vs}
    needed = sorted({c.step: c for (n, _v), p in picks.items() if len(p) == n for c in p}.values(), key=lambda c: c.step)
    todo = [(m, n, v) for m in methods for n in ns for v in vs if len(picks[(n, v)]) == n]
    if not todo:
        have = ", ".join(str(c.step) for c in found)
        raise MergeError(f"no recipe of the grid fits run {run}: up to step {at_step} it has checkpoints at {have}, "
                         f"too few for any N in {list(ns)} spaced any V in {list(vs)} apart")
    heldout = HeldoutEvaluator(load_run_config(run))
    with Progress(enabled=progress) as bar:
        task = bar.add("merge-sweep", total=len(todo) + len(needed) + 1, unit="loads + evals")
        states = {}
        for c in needed:
            states[c.step] = load_tensors(open_input(c.path))
            bar.advance(task)
        heldout.load(states.get(at_step) or load_tensors(open_input(found[-1].path)), str(found[-1].path))
        last_loss = heldout.stats_of_loaded().loss
        bar.advance(task)
        cells = []
        for m in methods:
            for n in ns:
                for v in vs:
                    pick = picks[(n, v)]
                    if len(pick) < n:
                        cells.append(SweepCell(m, n, v, None))
                        continue
                    w = weights_for(m, n, alpha=alpha if m == "ema" else None)
                    merged = merge_state_dicts([states[c.step] for c in pick], w, dtype="input")
                    heldout.load(merged, f"{m} of steps {', '.join(str(c.step) for c in pick)}")
                    cells.append(SweepCell(m, n, v, heldout.stats_of_loaded().loss, tuple(c.step for c in pick), tuple(w)))
                    bar.advance(task)
    decay = [b for b in r.branches if b.kind == "decay" and b.status == "finished" and b.fork is not None
             and b.fork.step == at_step and b.parent == branch and b.final is not None and b.final.eval_loss is not None]
    d = min(decay, key=lambda b: b.final.eval_loss) if decay else None  # type: ignore[union-attr]
    return SweepResult(str(Path(run)), branch, at_step, float(alpha), tuple(cells), last_loss,
                       None if d is None else d.final.eval_loss, None if d is None else d.name)  # type: ignore[union-attr]
