"""The training position of a merge input, and the oldest-first order of the inputs.

Merge weights are positional (input 1 is the oldest), and shell globs sort lexically
(``checkpoint-100`` before ``checkpoint-20``), so inputs are put in step order before weighing.
A step is read, in this order, from riverbed's ``state.json`` (``step``, ``tokens``), a Hugging
Face Trainer ``trainer_state.json`` (``global_step``, ``num_input_tokens_seen``), or the name
(``checkpoint-1500``, ``step_0000001500``, ``step-1500``, ``step1500.safetensors``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from riverbed.checkpoints import layout
from riverbed.checkpoints.schema import CheckpointState
from riverbed.errors import CheckpointError, MergeError

TRAINER_STATE = "trainer_state.json"
ORDERS = ("step", "given")
_NAME_RE = re.compile(r"^(?:checkpoint|step|global_step|iter)[-_]?(\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Position:
    """Where a checkpoint sits in training: its step, its tokens if known, and what said so."""

    step: int
    tokens: int | None
    source: str  # "state.json" | "trainer_state.json" | "name"


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MergeError(f"{path}: unreadable checkpoint state ({exc})") from exc
    return data if isinstance(data, dict) else None


def step_from_name(name: str) -> int | None:
    """``checkpoint-1500`` / ``step_0000001500`` / ``step1500.safetensors`` -> 1500, else None.

    >>> step_from_name("checkpoint-1500"), step_from_name("step_0000000200"), step_from_name("final")
    (1500, 200, None)
    """
    stem = name[: -len(".safetensors")] if name.endswith(".safetensors") else name
    m = _NAME_RE.match(stem)
    return int(m.group(1)) if m else None


def position(path: str | os.PathLike[str]) -> Position | None:
    """The training position of one merge input (directory or file), or None when unknown."""
    p = Path(path)
    directory = p if p.is_dir() else p.parent
    state = directory / layout.STATE_FILE
    if state.is_file():
        data = _read_json(state) or {}
        if "step" in data:  # riverbed's state.json, read by its one reader (another tool's file falls through)
            try:
                st = CheckpointState.from_json(data, source=str(state))
            except CheckpointError as exc:
                raise MergeError(f"{state}: unreadable checkpoint state ({exc})") from None
            if st.step >= 0:
                return Position(st.step, st.tokens if "tokens" in data else None, layout.STATE_FILE)
    trainer = directory / TRAINER_STATE
    if trainer.is_file():
        data = _read_json(trainer) or {}
        step = _int(data.get("global_step"))
        if step is not None:
            return Position(step, _int(data.get("num_input_tokens_seen")) or None, TRAINER_STATE)
    for name in ((p.name,) if p.is_dir() else (p.name, directory.name)):
        step = step_from_name(name)
        if step is not None:
            return Position(step, None, "name")
    return None


def order_inputs(inputs: list[str], mode: str = "step", positions: list[Position | None] | None = None,
                 ) -> tuple[list[str], list[Position | None], str | None]:
    """``(inputs oldest first, their positions, a warning or None)``.

    ``mode="step"`` sorts by step when every input's step is known (stable for equal steps) and
    warns when that differs from the given order; ``mode="given"`` keeps the order as given.
    ``positions`` (one per input) are used instead of reading them from the inputs.

    >>> order_inputs(["a", "b"], "given")[0]
    ['a', 'b']
    """
    if mode not in ORDERS:
        raise MergeError(f"order must be one of {', '.join(ORDERS)}; got {mode!r}")
    positions = [position(p) for p in inputs] if positions is None else list(positions)
    if mode == "given":
        return list(inputs), positions, None
    unknown = [p for p, pos in zip(inputs, positions) if pos is None]
    if unknown:
        if len(inputs) == 1:
            return list(inputs), positions, None
        return list(inputs), positions, (
            f"the step of {unknown[0]} is unknown (no state.json, {TRAINER_STATE} or checkpoint-N / step_N name): "
            "merging in the given order, oldest first (--order given silences this)")
    idx = sorted(range(len(inputs)), key=lambda i: positions[i].step)  # type: ignore[union-attr]
    if idx == list(range(len(inputs))):
        return list(inputs), positions, None
    given = ", ".join(f"{inputs[i]} ({positions[i].step})" for i in range(len(inputs)))  # type: ignore[union-attr]
    return [inputs[i] for i in idx], [positions[i] for i in idx], (
        f"inputs were not given oldest first; merging them in step order instead (given: {given}; "
        "--order given keeps the given order)")
