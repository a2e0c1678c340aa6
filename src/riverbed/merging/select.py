"""Pick the checkpoints of a run to merge: the last N spaced V apart (the PMA paper's merge
interval V and count N), in steps or tokens."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from riverbed.checkpoints import layout
from riverbed.errors import MergeError

UNITS = ("steps", "tokens")


@dataclass(frozen=True)
class Selected:
    step: int
    tokens: int
    path: Path


def _position(path: Path, step: int) -> tuple[int, int]:
    try:
        state = json.loads((path / layout.STATE_FILE).read_text(encoding="utf-8"))
        return int(state.get("step", step)), int(state.get("tokens", 0))
    except (OSError, ValueError, TypeError) as exc:
        raise MergeError(f"{path / layout.STATE_FILE}: unreadable checkpoint state ({exc})") from exc


def select_checkpoints(run: str | os.PathLike[str], last: int, every: int, *, unit: str = "steps", branch: str = layout.MAIN) -> list[Selected]:
    """The newest checkpoint of ``branch`` and, walking back, each newest checkpoint at least
    ``every`` (steps or tokens) before the previous pick, until ``last`` are chosen. Oldest first.

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
    refs = layout.list_checkpoints(run, branch)
    found = []
    for ref in refs:
        step, tokens = _position(ref.path, ref.step)
        found.append(Selected(step, tokens, ref.path))
    key = (lambda s: s.step) if unit == "steps" else (lambda s: s.tokens)
    picked: list[Selected] = []
    for cand in reversed(found):
        if not picked or key(cand) <= key(picked[-1]) - every:
            picked.append(cand)
        if len(picked) == last:
            break
    if len(picked) < last:
        have = ", ".join(str(key(s)) for s in found) or "none"
        raise MergeError(
            f"run {run} branch {branch!r} has only {len(picked)} checkpoint(s) spaced {every} {unit} apart, "
            f"{last} asked (--last {last} --every {every}); checkpoints at {unit}: {have}"
        )
    return list(reversed(picked))
