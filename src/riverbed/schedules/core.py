"""The schedule contract and the simple schedules: Constant, Warmup, WarmupStable, Piecewise, Tabulated.

A schedule is a frozen value object answering ``multiplier(step)``: the factor applied to the
peak LR for the optimizer update of 0-based ``step`` (step 0 is the first update). Nothing
is stateful; the training code keeps the step. riverbed's convention (docs/schedules.md):

* warmup of W steps: step s < W gets ``start + (1 - start) * g((s + 1) / W)``, so the first
  update already moves and step W - 1 is at the peak (no wasted zero-LR step);
* a decay of D steps: its j-th step (j = 0..D-1) has progress ``p = (j + 1) / D``, so the
  first decay step is already below the peak and the *last executed step* is exactly at
  the minimum: a checkpoint taken after the decay is a finished model;
* past ``total_steps`` a schedule continues its last phase (a finished decay holds min).

>>> WarmupStable(warmup=4).multiplier(0), WarmupStable(warmup=4).multiplier(3)
(0.25, 1.0)
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from riverbed.errors import ConfigError
from riverbed.schedules.shapes import WARMUP_SHAPES, decay_value, validate_warmup_shape


@dataclass(frozen=True)
class Phase:
    """A named stretch of steps ``[start, end)``; ``end`` None = indefinite."""

    name: str  # "warmup", "stable", "decay" or "constant"
    start: int
    end: int | None


class Schedule(ABC):
    """Base of every schedule: ``multiplier(step)``, ``total_steps``, ``phases()``."""

    @property
    @abstractmethod
    def total_steps(self) -> int | None:
        """Number of optimizer steps the schedule is planned for; None = indefinite."""

    @abstractmethod
    def _at(self, step: int) -> float: ...

    @abstractmethod
    def phases(self) -> tuple[Phase, ...]:
        """The phases in order; their boundaries are where the schedule may jump."""

    def target_min(self) -> float | None:
        """The multiplier the schedule decays to (None when it never decays)."""
        return getattr(self, "min_ratio", None)

    def multiplier(self, step: int) -> float:
        """LR multiplier for the update of 0-based ``step``."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ConfigError(f"step: must be an integer >= 0, got {step!r}")
        return self._at(step)

    def values(self, n: int | None = None) -> list[float]:
        """Multipliers for steps 0..n-1 (n defaults to ``total_steps``)."""
        n = self.total_steps if n is None else n
        if n is None:
            raise ConfigError("steps: the schedule is indefinite; say how many steps to evaluate")
        return [self._at(s) for s in range(n)]


# --- validation helpers (errors name the field and the value) ---------------------------


def check_int(owner: str, name: str, value: object, *, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{owner}.{name}: must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{owner}.{name}: must be >= {minimum}, got {value!r}")


def check_ratio(owner: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{owner}.{name}: must be a number in [0, 1], got {value!r}")


def set_float(obj: object, name: str) -> None:
    # Store ints given for float fields as floats so equal schedules compare equal.
    value = getattr(obj, name)
    if isinstance(value, int) and not isinstance(value, bool):
        object.__setattr__(obj, name, float(value))


def set_tuple(obj: object, name: str) -> None:
    value = getattr(obj, name)
    if isinstance(value, list):
        object.__setattr__(obj, name, tuple(value))


def warmup_value(step: int, warmup: int, start: float, shape: str) -> float:
    """Warmup multiplier for ``step < warmup`` (riverbed convention: step W-1 is the peak)."""
    if step + 1 >= warmup:
        return 1.0
    return start + (1.0 - start) * WARMUP_SHAPES[shape]((step + 1) / warmup)


def decay_at(j: int, decay: int, shape: str, lo: float, hi: float, half_life: float | None, stages: int) -> float:
    """Multiplier of the j-th decay step (0-based) of a D-step decay: progress (j + 1) / D."""
    p = (j + 1) / decay if j + 1 < decay else 1.0
    return decay_value(shape, p, lo=lo, hi=hi, decay_steps=decay, half_life=half_life, stages=stages)


# --- simple schedules ---------------------------------------------------------------------


@dataclass(frozen=True)
class Constant(Schedule):
    """A constant multiplier.

    >>> Constant(0.5).multiplier(123)
    0.5
    """

    value: float = 1.0
    """The multiplier at every step (>= 0)."""
    steps: int | None = None
    """Planned length in steps; None = indefinite."""

    def __post_init__(self) -> None:
        v = self.value
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or math.isinf(v):
            raise ConfigError(f"constant.value: must be a finite number >= 0, got {self.value!r}")
        set_float(self, "value")
        if self.steps is not None:
            check_int("constant", "steps", self.steps, minimum=1)

    @property
    def total_steps(self) -> int | None:
        return self.steps

    def _at(self, step: int) -> float:
        return self.value

    def phases(self) -> tuple[Phase, ...]:
        return (Phase("constant", 0, self.steps),)

    def target_min(self) -> float | None:
        return None


@dataclass(frozen=True)
class Warmup(Schedule):
    """Warmup over ``steps`` steps from ``start`` to 1, then 1 (a finite piece for Piecewise).

    >>> Warmup(steps=2).values()
    [0.5, 1.0]
    """

    steps: int
    """Warmup length in steps (>= 1)."""
    start: float = 0.0
    """Multiplier at the virtual step -1 (the warmup starts from here)."""
    shape: str = "linear"
    """Warmup shape: linear, cosine or 1-sqrt."""

    def __post_init__(self) -> None:
        check_int("warmup", "steps", self.steps, minimum=1)
        check_ratio("warmup", "start", self.start)
        set_float(self, "start")
        if self.shape not in WARMUP_SHAPES:
            raise ConfigError(f"warmup.shape: unknown warmup shape {self.shape!r}; choose one of {', '.join(WARMUP_SHAPES)}")

    @property
    def total_steps(self) -> int | None:
        return self.steps

    def _at(self, step: int) -> float:
        return warmup_value(step, self.steps, self.start, self.shape)

    def phases(self) -> tuple[Phase, ...]:
        return (Phase("warmup", 0, self.steps),)

    def target_min(self) -> float | None:
        return None


@dataclass(frozen=True)
class WarmupStable(Schedule):
    """The indefinite main branch of WSD: warmup, then the peak for as long as wanted.

    Fork decay branches from it with :class:`~riverbed.schedules.wsd.DecayBranch`.

    >>> WarmupStable(warmup=10).multiplier(10**9)
    1.0
    """

    warmup: int = 0
    """Warmup length in steps (0 = start at the peak)."""
    warmup_start: float = 0.0
    """Multiplier at the virtual step -1 (transformers starts at min_lr_ratio)."""
    warmup_shape: str = "linear"
    """Warmup shape: linear, cosine or 1-sqrt."""

    def __post_init__(self) -> None:
        check_int("warmup-stable", "warmup", self.warmup)
        check_ratio("warmup-stable", "warmup_start", self.warmup_start)
        set_float(self, "warmup_start")
        validate_warmup_shape("warmup-stable", self.warmup_shape)

    @property
    def total_steps(self) -> int | None:
        return None

    def _at(self, step: int) -> float:
        if step < self.warmup:
            return warmup_value(step, self.warmup, self.warmup_start, self.warmup_shape)
        return 1.0

    def phases(self) -> tuple[Phase, ...]:
        if self.warmup:
            return (Phase("warmup", 0, self.warmup), Phase("stable", self.warmup, None))
        return (Phase("stable", 0, None),)

    def target_min(self) -> float | None:
        return None


@dataclass(frozen=True)
class Segment:
    """One piece of a :class:`Piecewise`: a schedule run for ``steps`` steps from its own step 0."""

    schedule: Schedule
    steps: int | None = None
    """Length of the piece; None = the schedule's own ``total_steps`` (last piece: may be indefinite)."""


@dataclass(frozen=True)
class Piecewise(Schedule):
    """Schedules one after another; each piece sees its own local step (step - piece start).

    Past the end the last piece continues. A single piece with a length truncates a schedule.

    >>> pw = Piecewise((Segment(Warmup(2), 2), Segment(Constant(0.5))))
    >>> pw.values(4)
    [0.5, 1.0, 0.5, 0.5]
    """

    segments: tuple[Segment, ...] = field(default_factory=tuple)
    """The pieces, in order."""

    def __post_init__(self) -> None:
        set_tuple(self, "segments")
        if not self.segments:
            raise ConfigError("piecewise.segments: needs at least one segment, got none")
        for i, seg in enumerate(self.segments):
            if not isinstance(seg, Segment) or not isinstance(seg.schedule, Schedule):
                raise ConfigError(f"piecewise.segments[{i}]: must be a Segment(schedule, steps), got {seg!r}")
            if seg.steps is not None:
                check_int("piecewise", f"segments[{i}].steps", seg.steps, minimum=1)
            elif seg.schedule.total_steps is None and i < len(self.segments) - 1:
                raise ConfigError(
                    f"piecewise.segments[{i}].steps: an indefinite schedule can only be the last piece, got steps=None"
                )

    def _lengths(self) -> list[int | None]:
        return [seg.steps if seg.steps is not None else seg.schedule.total_steps for seg in self.segments]

    @property
    def total_steps(self) -> int | None:
        lengths = self._lengths()
        return None if lengths[-1] is None else sum(lengths)  # type: ignore[arg-type]

    def _at(self, step: int) -> float:
        start = 0
        for seg, length in zip(self.segments[:-1], self._lengths()[:-1]):
            assert length is not None
            if step < start + length:
                return seg.schedule._at(step - start)
            start += length
        return self.segments[-1].schedule._at(step - start)

    def phases(self) -> tuple[Phase, ...]:
        out: list[Phase] = []
        start = 0
        for seg, length in zip(self.segments, self._lengths()):
            end = None if length is None else start + length
            for ph in seg.schedule.phases():
                a = start + ph.start
                b = None if ph.end is None else start + ph.end
                if end is not None:
                    if a >= end:
                        break
                    b = end if b is None else min(b, end)
                out.append(Phase(ph.name, a, b))
            if end is None:
                break
            start = end
        return tuple(out)

    def target_min(self) -> float | None:
        return self.segments[-1].schedule.target_min()


# --- tokens --------------------------------------------------------------------------------


def tokens_to_steps(tokens: float, tokens_per_step: int, *, field: str = "tokens") -> int:
    """Steps needed to see at least ``tokens`` tokens: ceil(tokens / tokens_per_step).

    Schedules count optimizer steps; to express one in tokens, convert its lengths with this
    helper (a budget then holds ``steps * tokens_per_step`` tokens exactly), or build it with
    lengths in tokens and call ``multiplier(tokens_seen_before_this_update)``.

    >>> tokens_to_steps(1e6, 4096)
    245
    """
    check_int("tokens_per_step", "value", tokens_per_step, minimum=1)
    if isinstance(tokens, bool) or not isinstance(tokens, (int, float)) or not tokens > 0 or math.isinf(tokens):
        raise ConfigError(f"{field}: must be a positive number of tokens, got {tokens!r}")
    if isinstance(tokens, float):
        tokens = round(tokens) if abs(tokens - round(tokens)) < 1e-6 else tokens
    return -(-int(math.ceil(tokens)) // tokens_per_step)


def steps_to_tokens(steps: int, tokens_per_step: int) -> int:
    """Tokens seen after ``steps`` steps."""
    return steps * tokens_per_step


@dataclass(frozen=True)
class Tabulated(Schedule):
    """One multiplier per step, as written out (a schedule found by optimisation, or taken from a log).

    ``table[s]`` is the multiplier of step s; past the end the last value holds. ``warmup`` names the
    first steps as the warmup phase (the predictor's laws count LR decreases only after it).

    >>> Tabulated((0.5, 1.0, 0.8, 0.2), warmup=2).values(6)
    [0.5, 1.0, 0.8, 0.2, 0.2, 0.2]
    """

    table: tuple[float, ...] = ()
    warmup: int = 0

    def __post_init__(self) -> None:
        vals = tuple(self.table)
        if not vals:
            raise ConfigError("tabulated.table: needs at least one multiplier, got none")
        for i, v in enumerate(vals):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"tabulated.table[{i}]: must be a finite number >= 0, got {v!r}")
        object.__setattr__(self, "table", tuple(float(v) for v in vals))
        check_int("tabulated", "warmup", self.warmup)
        if self.warmup > len(vals):
            raise ConfigError(f"tabulated.warmup: {self.warmup} is longer than the {len(vals)} values")

    @property
    def total_steps(self) -> int:
        return len(self.table)

    def _at(self, step: int) -> float:
        return self.table[min(step, len(self.table) - 1)]

    def phases(self) -> tuple[Phase, ...]:
        rest = (Phase("decay", self.warmup, len(self.table)),) if self.warmup < len(self.table) else ()
        return ((Phase("warmup", 0, self.warmup),) if self.warmup else ()) + rest

    def target_min(self) -> float:
        return self.table[-1]
