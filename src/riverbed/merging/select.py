"""Pick the checkpoints of a run to merge: the last N spaced V apart (the PMA paper's merge
interval V and count N), in steps or tokens.

Two kinds of directory hold a trajectory: a riverbed run (``run.json``, ``branches/<b>/checkpoints/
step_N``) and a Hugging Face Trainer ``output_dir`` (``checkpoint-N`` folders, each with its
``trainer_state.json``)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from riverbed.checkpoints import layout
from riverbed.errors import MergeError
from riverbed.merging.order import TRAINER_STATE, position

_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")

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


def select_checkpoints(run: str | os.PathLike[str], last: int, every: int, *, unit: str = "steps", branch: str = layout.MAIN) -> list[Selected]:
    """The newest checkpoint of ``branch`` of a riverbed run (or of a Trainer ``output_dir``'s
    ``checkpoint-N`` folders) and, walking back, each newest checkpoint at least
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
    kind = directory_kind(Path(run))
    if kind == "riverbed":
        found = [Selected(*_position(ref.path, ref.step), ref.path) for ref in layout.list_checkpoints(run, branch)]
        what = f"run {run} branch {branch!r}"
    elif kind == "trainer":
        if branch != layout.MAIN:
            raise MergeError(f"--branch {branch}: {run} is a Trainer output_dir, which has no branches")
        found = _trainer_checkpoints(Path(run), unit)
        what = f"Trainer output_dir {run}"
    else:
        raise MergeError(f"--run {run} is {kind}")
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
            f"{what} has only {len(picked)} checkpoint(s) spaced {every} {unit} apart, "
            f"{last} asked (--last {last} --every {every}); checkpoints at {unit}: {have}"
        )
    return list(reversed(picked))
