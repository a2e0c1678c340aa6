"""Pick the checkpoints of a run to merge: the last N spaced V apart (the PMA paper's merge
interval V and count N), in steps or tokens.

:func:`pick_spaced` is riverbed's one rule for "the last N, V apart": ``riverbed merge --run``,
merged initialisation (``[init]``), the spike guard's healthy checkpoints (riverbed's loop and
the framework integrations) and the scaling merge points all select with it.

Two kinds of directory hold a trajectory: a riverbed run (``run.json``, ``branches/<b>/checkpoints/
step_N``) and a Hugging Face Trainer ``output_dir`` (``checkpoint-N`` folders, each with its
``trainer_state.json``)."""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from riverbed.checkpoints import layout
from riverbed.checkpoints.schema import read_state
from riverbed.errors import CheckpointError, ConfigError, MergeError, RiverbedWarning
from riverbed.merging.order import TRAINER_STATE, position
from riverbed.schedules import Schedule, schedule_from_spec

_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")

UNITS = ("steps", "tokens")
T = TypeVar("T")


def pick_spaced(items: Sequence[T], *, last: int, every: int, key: Callable[[T], int],
                accept: Callable[[T], bool] | None = None) -> list[T]:
    """The newest item and, walking back, each newest one at least ``every`` (in ``key``'s
    unit) before the previous pick, until ``last`` are chosen; oldest first. ``items`` are in
    trajectory order (oldest first). ``accept`` may pass over a candidate (unreadable, NaN weights): the
    next older one is considered in its place. Fewer than ``last`` when the items run out.

    >>> pick_spaced([100, 200, 250, 300, 400], last=3, every=100, key=int)
    [200, 300, 400]
    >>> pick_spaced([100, 200, 250, 300, 400], last=3, every=100, key=int, accept=lambda s: s != 300)
    [100, 250, 400]
    """
    picked: list[T] = []
    for cand in reversed(items):
        if len(picked) == last:
            break
        if picked and key(cand) > key(picked[-1]) - every:
            continue  # closer than `every` to the previous pick
        if accept is not None and not accept(cand):
            continue
        picked.append(cand)
    return picked[::-1]


def spacing_note(positions: Sequence[int], every: int, unit: str = "steps") -> str | None:
    """None when consecutive picks are exactly ``every`` apart; else a sentence saying the
    spacing actually used (checkpoints off the grid, or gaps in it).

    >>> spacing_note([100, 200, 300], 100) is None
    True
    >>> spacing_note([100, 250, 300], 100)
    'spacing used: 150, 50 steps apart, not the --every 100 asked (the checkpoints are not on a 100-steps grid)'
    """
    gaps = [b - a for a, b in zip(positions, positions[1:])]
    if all(g == every for g in gaps):
        return None
    return (f"spacing used: {', '.join(str(g) for g in gaps)} {unit} apart, not the --every {every} asked "
            f"(the checkpoints are not on a {every}-{unit} grid)")


@dataclass(frozen=True)
class Selected:
    step: int
    tokens: int
    path: Path


def _position(path: Path) -> tuple[int, int]:
    try:
        state = read_state(path)
    except CheckpointError as exc:
        raise MergeError(f"unreadable checkpoint state: {exc}") from exc
    return state.step, state.tokens


def directory_kind(path: Path) -> str:
    """``"riverbed"`` (a run), ``"trainer"`` (a Trainer output_dir) or a description of what it is."""
    if (path / layout.MANIFEST).is_file() or (path / layout.BRANCHES).is_dir():
        return "riverbed"
    if any(_CHECKPOINT_RE.match(c.name) and c.is_dir() for c in path.iterdir()):
        return "trainer"
    if any((path / w).is_file() for w in _WEIGHTS):
        return "a single checkpoint (it holds model weights): give it as an input instead of --run"
    names = sorted(c.name for c in path.iterdir())[:6]
    return f"neither a riverbed run (no {layout.MANIFEST}, no {layout.BRANCHES}/) nor a Trainer output_dir (no checkpoint-N folders); it holds: {', '.join(names) or 'nothing'}"


def _trainer_checkpoints(run: Path, unit: str) -> list[Selected]:
    found = []
    for child in run.iterdir():
        m = _CHECKPOINT_RE.match(child.name)
        if not m or not child.is_dir() or not any((child / w).is_file() for w in _WEIGHTS):
            continue  # a folder Trainer is still writing has no weights yet
        pos = position(child)
        step = pos.step if pos is not None else int(m.group(1))
        tokens = pos.tokens if pos is not None else None
        if unit == "tokens" and tokens is None:
            raise MergeError(f"--unit tokens: {child / TRAINER_STATE} has no num_input_tokens_seen "
                             "(set include_num_input_tokens_seen=True in TrainingArguments, or use --unit steps)")
        found.append(Selected(step, tokens or 0, child))
    return sorted(found, key=lambda s: s.step)


def select_checkpoints(run: str | os.PathLike[str], last: int, every: int, *, unit: str = "steps", branch: str = layout.MAIN,
                       until: int | None = None, stable_only: bool = False) -> list[Selected]:
    """The newest checkpoint of ``branch`` of a riverbed run (or of a Trainer ``output_dir``'s
    ``checkpoint-N`` folders) and, walking back, each newest checkpoint at least
    ``every`` (steps or tokens) before the previous pick, until ``last`` are chosen. Oldest first.

    ``until``: only checkpoints at or before that step. ``stable_only`` (riverbed runs, adopted
    ones included): only checkpoints of the stable phase -- past the warmup, every update at the
    schedule's highest LR. A selection whose checkpoints were trained at different LRs (it spans
    a decay, a warmup or a re-warming) is warned about: their average mixes phases.

    >>> # select_checkpoints("runs/r1", last=4, every=1000)  -> steps 5000, 6000, 7000, 8000
    """
    if unit not in UNITS:
        raise MergeError(f"unit must be one of {', '.join(UNITS)}; got {unit!r}")
    if not isinstance(last, int) or last < 1:
        raise MergeError(f"--last must be a positive integer, got {last!r}")
    if not isinstance(every, int) or every < 1:
        raise MergeError(f"--every must be a positive integer, got {every!r}")
    if not Path(run).is_dir():
        raise MergeError(f"run directory {run} does not exist")
    kind = directory_kind(Path(run))
    if kind == "riverbed":
        found = [Selected(*_position(ref.path), layout.weights_input(ref.path)) for ref in layout.list_checkpoints(run, branch)]
        what = f"run {run} branch {branch!r}"
    elif kind == "trainer":
        if branch != layout.MAIN:
            raise MergeError(f"--branch {branch}: {run} is a Trainer output_dir, which has no branches")
        found = _trainer_checkpoints(Path(run), unit)
        what = f"Trainer output_dir {run}"
    else:
        raise MergeError(f"--run {run} is {kind}")
    if until is not None:
        if isinstance(until, bool) or not isinstance(until, int) or until < 0:
            raise MergeError(f"--until must be a step number >= 0, got {until!r}")
        found = [s for s in found if s.step <= until]
        what += f" up to step {until}"
    lr = _multipliers(Path(run), branch) if kind == "riverbed" else None
    if stable_only:
        if lr is None:
            raise MergeError(f"--stable-only: {run} has no schedule riverbed knows (a riverbed run, or one made with `riverbed adopt`, has)")
        found = [s for s in found if lr.stable(s.step)]
        what += " in the stable phase"
    key = (lambda s: s.step) if unit == "steps" else (lambda s: s.tokens)
    picked = pick_spaced(found, last=last, every=every, key=key)  # found: in step order
    if lr is not None and len(picked) > 1:
        lr.warn_if_changes(picked)
    if len(picked) < last:
        have = ", ".join(str(key(s)) for s in found) or "none"
        raise MergeError(
            f"{what} has only {len(picked)} checkpoint(s) spaced {every} {unit} apart, "
            f"{last} asked (--last {last} --every {every}); checkpoints at {unit}: {have}"
        )
    return picked


#: Relative LR difference between selected checkpoints that is called an LR change.
LR_CHANGE = 0.01


@dataclass(frozen=True)
class _LR:
    """The schedule a run's branch trained with, as multipliers of its peak LR."""

    schedule: Schedule
    peak: float
    warmup: int

    def at(self, step: int) -> float:
        """The LR multiplier of the last update a checkpoint at ``step`` trained with."""
        return self.schedule.multiplier(max(step - 1, 0))

    def stable(self, step: int) -> bool:
        return step > self.warmup and self.at(step) >= self.peak * (1 - 1e-9)

    def warn_if_changes(self, picked: Sequence[Selected]) -> None:
        vals = [self.at(s.step) for s in picked]
        lo, hi = min(vals), max(vals)
        if hi > 0 and (hi - lo) / hi > LR_CHANGE:
            a, b = picked[vals.index(hi)], picked[vals.index(lo)]
            warnings.warn(f"the selected checkpoints span an LR change (x{hi:.3g} of the peak LR at step {a.step}, x{lo:.3g} "
                          f"at step {b.step}): their average mixes training phases; --until STEP or --stable-only keeps "
                          "the checkpoints of one phase", RiverbedWarning, stacklevel=3)


def _multipliers(run: Path, branch: str) -> _LR | None:
    """The branch's schedule from the run's run.json (None when it names none)."""
    try:
        manifest = json.loads((run / layout.MANIFEST).read_text(encoding="utf-8"))
        spec = manifest["branches"][branch]["schedule"]
        schedule = schedule_from_spec(spec)
    except (OSError, ValueError, KeyError, TypeError, ConfigError):
        return None
    n = schedule.total_steps
    probe = schedule.values(n) if n is not None else []
    peak = max(probe) if probe else 1.0
    warmup = next((int(ph.end or 0) for ph in schedule.phases() if ph.name == "warmup"), 0)
    return _LR(schedule, max(peak, schedule.multiplier(warmup)), warmup)
