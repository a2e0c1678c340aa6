"""A decay-free stand-in for a decay branch: merge weights over the saved main-branch checkpoints.

To first order (same gradients), K decay updates from step s with LR multipliers r_0..r_{K-1}
(relative to the constant main-branch LR) end where the merge sum_k c_k theta_{s+k} of the
constant-LR checkpoints ends, with the per-step weights of :func:`riverbed.merging.weights.decay_weights`
(issue 12; WSM, arXiv 2507.17634).

A run does not save every step, so the per-step weights are moved onto the saved checkpoints by
the **interpolation rule**: between two saved checkpoints t_i < t_{i+1} the constant-LR iterate
theta_{s+k} is taken as the straight line between them (a constant LR moves the weights at a
constant expected speed), theta_{s+k} ~ (1 - l) theta_{t_i} + l theta_{t_{i+1}} with
l = (s + k - t_i) / (t_{i+1} - t_i), so c_k goes to t_i and t_{i+1} in those proportions. The rule
keeps the total weight (1) and the mean step sum_k c_k (s + k) exactly, and is exact when every
step is saved. It needs the fork s and the end s + K saved; a gap between consecutive saved
checkpoints inside the window larger than ``max_gap`` (default K / 4: at least five checkpoints
over the window) is refused as too coarse, naming the steps that are missing.

>>> emulation_weights([1.0, 0.5], fork=0, saved=[0, 1, 2]).weights   # decay_weights less the zero on the fork
(0.5, 0.5)
>>> emulation_weights([1.0, 0.75, 0.5, 0.25], fork=0, saved=[0, 2, 4], max_gap=2).weights
(0.125, 0.5, 0.375)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from riverbed.checkpoints import layout
from riverbed.errors import MergeError, RiverbedError
from riverbed.merging.engine import MergeResult
from riverbed.merging.pipeline import run_recipe
from riverbed.merging.recipe import MergeRecipe
from riverbed.merging.weights import decay_weights
from riverbed.runs import Run
from riverbed.runs.fork import ForkRequest, decay_schedule, parse_length, tokens_per_step


@dataclass(frozen=True)
class Emulation:
    """The merge that stands in for a decay: saved steps (oldest first) and their weights."""

    fork: int
    length: int
    steps: tuple[int, ...]
    """Saved main-branch checkpoints that carry weight, oldest first."""
    weights: tuple[float, ...]
    """One per step; they sum to 1."""
    per_step: tuple[float, ...]
    """The K + 1 exact per-step weights c_0..c_K over steps fork..fork + K (before aggregation)."""
    max_gap: int
    """Largest spacing between consecutive saved checkpoints that was accepted."""
    paths: tuple[Path, ...] = ()
    """The checkpoint directories (when built from a run)."""

    def to_dict(self) -> dict[str, Any]:
        return {"fork": self.fork, "length": self.length, "steps": list(self.steps), "weights": list(self.weights),
                "max_gap": self.max_gap}


def _gaps_text(window: Sequence[int], max_gap: int) -> str:
    missing = []
    for a, b in zip(window, window[1:]):
        if b - a > max_gap:
            missing += list(range(a + max_gap, b, max_gap))
    shown = ", ".join(str(s) for s in missing[:12]) + (" ..." if len(missing) > 12 else "")
    return shown


def emulation_weights(multipliers: Sequence[float], fork: int, saved: Sequence[int], *, max_gap: int | None = None) -> Emulation:
    """Weights over the ``saved`` steps that stand in for a decay of ``len(multipliers)`` updates from ``fork``.

    ``multipliers``: r_0..r_{K-1}, each decay update's LR over the main branch's (constant) LR.
    Raises MergeError naming the missing steps when the fork or the end is not saved, or when the
    saved checkpoints in the window are more than ``max_gap`` steps apart (default ``max(1, K // 4)``).
    """
    per_step = decay_weights(multipliers)
    k = len(multipliers)
    end = fork + k
    gap = max(1, k // 4) if max_gap is None else int(max_gap)
    if gap < 1:
        raise MergeError(f"--max-gap must be a positive number of steps, got {max_gap!r}")
    window = sorted({int(s) for s in saved if fork <= s <= end})
    missing_ends = [s for s in (fork, end) if s not in window]
    if missing_ends:
        have = ", ".join(str(s) for s in window) or "none"
        raise MergeError(f"emulating a {k}-step decay from step {fork} needs the main-branch checkpoints at steps "
                         f"{fork} and {end}; step(s) {', '.join(map(str, missing_ends))} not saved "
                         f"(saved in that window: {have})")
    widest = max((b - a for a, b in zip(window, window[1:])), default=0)
    if widest > gap:
        raise MergeError(f"emulating a {k}-step decay from step {fork}: saved checkpoints are up to {widest} steps apart, "
                         f"coarser than --max-gap {gap}; missing steps: {_gaps_text(window, gap)} "
                         f"(save more often, or pass --max-gap {widest} to accept the interpolated approximation)")
    agg = dict.fromkeys(window, 0.0)
    for j, c in enumerate(per_step):
        t = fork + j
        if t in agg:
            agg[t] += c
            continue
        i = next(i for i in range(len(window) - 1) if window[i] < t < window[i + 1])
        a, b = window[i], window[i + 1]
        lam = (t - a) / (b - a)
        agg[a] += (1.0 - lam) * c
        agg[b] += lam * c
    kept = [(s, w) for s, w in agg.items() if w > 1e-15]
    return Emulation(fork, k, tuple(s for s, _ in kept), tuple(w for _, w in kept), tuple(per_step), gap)


def decay_multipliers(run: Run, from_step: int, shape: str, length: int, min_ratio: float | None = None,
                      extra: dict[str, Any] | None = None) -> list[float]:
    """r_0..r_{K-1} of the decay branch ``shape`` from main's ``from_step``, relative to the main LR.

    The main branch must hold a constant LR over the window (the emulation is of a constant-LR
    trajectory); a main schedule that moves there is refused, naming the step.
    """
    req = ForkRequest(f"emulate-{shape}", from_step, length, shape, min_ratio, tuple((extra or {}).items()))
    try:
        decay = decay_schedule(run, req)
    except RiverbedError as exc:
        raise MergeError(f"--emulate-decay {shape}: {exc}") from None
    main = decay.main
    level = main.multiplier(from_step)
    out = []
    for j in range(length):
        m = main.multiplier(from_step + j)
        if abs(m - level) > 1e-9 * max(1.0, level):
            raise MergeError(f"--emulate-decay: the main branch's LR changes at step {from_step + j} ({level:.4g} -> {m:.4g} x peak) "
                             f"inside the window {from_step}..{from_step + length}: the emulation needs a constant-LR main branch")
        out.append(decay.multiplier(from_step + j) / level)
    return out


def emulate_decay(run: str | os.PathLike[str] | Run, from_step: int, shape: str, length: int | str, *,
                  min_ratio: float | None = None, max_gap: int | None = None, extra: dict[str, Any] | None = None) -> Emulation:
    """The :class:`Emulation` of a decay branch of a riverbed run from its saved main checkpoints.

    ``length``: steps, or what ``riverbed branch --length`` accepts ("20%", "2000 steps", "1M tok").

    >>> # e = emulate_decay("runs/r1", 800, "1-sqrt", 200); e.steps, e.weights
    """
    if not isinstance(run, Run):
        if not Path(run).is_dir():
            raise MergeError(f"run directory {run} does not exist")
        try:
            run = Run.open(run)
        except RiverbedError as exc:
            raise MergeError(f"--run {run}: {exc}") from None
    if isinstance(from_step, bool) or not isinstance(from_step, int) or from_step < 0:
        raise MergeError(f"--from: {from_step!r} is not a step number (>= 0)")
    try:
        n = parse_length(length, from_step, tokens_per_step(run))
    except RiverbedError as exc:
        raise MergeError(str(exc)) from None
    refs = {r.step: r.path for r in layout.list_checkpoints(run.path, layout.MAIN)}
    emu = emulation_weights(decay_multipliers(run, from_step, shape, n, min_ratio, extra), from_step, sorted(refs), max_gap=max_gap)
    return Emulation(emu.fork, emu.length, emu.steps, emu.weights, emu.per_step, emu.max_gap, tuple(refs[s] for s in emu.steps))


def merge_emulated_decay(out: str | os.PathLike[str], run: str | os.PathLike[str], from_step: int, shape: str, length: int | str, *,
                         min_ratio: float | None = None, max_gap: int | None = None, dtype: str | None = None,
                         accumulate: str = "fp32", threads: int | None = None, dry_run: bool = False, overwrite: bool = False,
                         progress: bool = True, verbose: bool = True) -> MergeResult:
    """Write the merge that stands in for the decay into ``out`` (method ``weights``; the recipe's
    ``selection`` records the emulation, so ``riverbed merge --recipe`` replays it)."""
    emu = emulate_decay(run, from_step, shape, length, min_ratio=min_ratio, max_gap=max_gap)
    selection = {"run": str(run), "branch": layout.MAIN,
                 "emulate_decay": {"shape": shape, "from": from_step, "length": emu.length, "min_ratio": min_ratio,
                                   "max_gap": emu.max_gap, "rule": "linear interpolation between saved checkpoints"}}
    if verbose:
        print(f"emulating a {shape} decay of {emu.length} steps from step {from_step}: "
              f"{len(emu.steps)} main checkpoints (steps {', '.join(map(str, emu.steps))})")
    recipe = MergeRecipe(tuple(str(p) for p in emu.paths), method="weights", weights=emu.weights, steps=emu.steps,
                         dtype=dtype, accumulate=accumulate)
    return run_recipe(recipe, out, selection=selection, threads=threads, dry_run=dry_run, overwrite=overwrite,
                      progress=progress, verbose=verbose)
