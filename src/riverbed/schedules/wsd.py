"""Decaying schedules: WSD, Cosine, DecayBranch, WSDS (WSD-S) and CyclicCosine.

All follow riverbed's convention (see :mod:`riverbed.schedules.core`): the j-th step of a
D-step decay has progress (j + 1) / D, so the last executed step is at the minimum.

>>> s = WSD(warmup=10, stable=70, decay=20, shape="linear", min_ratio=0.1)
>>> s.total_steps, s.multiplier(9), s.multiplier(99)
(100, 1.0, 0.1)
"""

from __future__ import annotations

from dataclasses import dataclass

from riverbed.errors import ConfigError
from riverbed.schedules.core import (
    Phase,
    Schedule,
    Tabulated,
    check_int,
    check_ratio,
    decay_at,
    set_float,
    set_tuple,
    warmup_value,
)
from riverbed.schedules.shapes import NEEDS_POSITIVE_MIN, validate_shape, validate_warmup_shape

#: The decay-branch shape that follows a written-out table (``DecayBranch.table``) instead of a formula.
TABULATED = "tabulated"


def _check_decay_fields(owner: str, obj: object) -> None:
    check_ratio(owner, "min_ratio", obj.min_ratio)  # type: ignore[attr-defined]
    set_float(obj, "min_ratio")
    if obj.half_life is not None:  # type: ignore[attr-defined]
        set_float(obj, "half_life")
    validate_shape(owner, obj.shape, obj.min_ratio, obj.half_life, obj.stages)  # type: ignore[attr-defined]


def _check_warmup_fields(owner: str, obj: object) -> None:
    check_int(owner, "warmup", obj.warmup)  # type: ignore[attr-defined]
    check_ratio(owner, "warmup_start", obj.warmup_start)  # type: ignore[attr-defined]
    set_float(obj, "warmup_start")
    validate_warmup_shape(owner, obj.warmup_shape)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class WSD(Schedule):
    """Warmup-stable-decay: W warmup steps, S steps at the peak, D decay steps to ``min_ratio``.

    Build it from a total length with ``WSD.from_total(total, warmup, decay, ...)``.

    >>> WSD(warmup=0, stable=2, decay=2, shape="linear").values()
    [1.0, 1.0, 0.5, 0.0]
    """

    warmup: int
    """Warmup steps (0 = start at the peak)."""
    stable: int
    """Steps at the peak after the warmup."""
    decay: int
    """Decay steps (>= 1); the last one is exactly at ``min_ratio``."""
    shape: str = "1-sqrt"
    """Decay shape, one of riverbed.schedules.shapes.DECAY_SHAPES."""
    min_ratio: float = 0.0
    """Final multiplier, in [0, 1]."""
    warmup_start: float = 0.0
    """Multiplier at the virtual step -1, where the warmup starts."""
    warmup_shape: str = "linear"
    """Warmup shape: linear, cosine or 1-sqrt."""
    half_life: float | None = None
    """exp-minicpm only: half-life in steps (MiniCPM used 5000)."""
    stages: int = 2
    """step only: number of equal stages (2 = DeepSeek's 80 % / 90 % drops)."""

    def __post_init__(self) -> None:
        _check_warmup_fields("wsd", self)
        check_int("wsd", "stable", self.stable)
        check_int("wsd", "decay", self.decay, minimum=1)
        _check_decay_fields("wsd", self)

    @classmethod
    def from_total(cls, total: int, warmup: int, decay: int, **kw: object) -> WSD:
        """WSD of ``total`` steps; the stable phase is what warmup and decay leave."""
        check_int("wsd", "steps", total, minimum=1)
        check_int("wsd", "warmup", warmup)
        check_int("wsd", "decay", decay, minimum=1)
        if warmup + decay > total:
            raise ConfigError(f"wsd.decay: warmup ({warmup}) + decay ({decay}) is longer than the schedule (steps={total})")
        return cls(warmup=warmup, stable=total - warmup - decay, decay=decay, **kw)  # type: ignore[arg-type]

    @property
    def total_steps(self) -> int:
        return self.warmup + self.stable + self.decay

    def _at(self, step: int) -> float:
        if step < self.warmup:
            return warmup_value(step, self.warmup, self.warmup_start, self.warmup_shape)
        j = step - self.warmup - self.stable
        if j < 0:
            return 1.0
        return decay_at(j, self.decay, self.shape, self.min_ratio, 1.0, self.half_life, self.stages)

    def phases(self) -> tuple[Phase, ...]:
        w, s = self.warmup, self.warmup + self.stable
        out = [Phase("warmup", 0, w)] if w else []
        if self.stable:
            out.append(Phase("stable", w, s))
        out.append(Phase("decay", s, s + self.decay))
        return tuple(out)


@dataclass(frozen=True)
class Cosine(Schedule):
    """Warmup, then a half cosine from the peak to ``min_ratio`` over the rest of ``steps``.

    >>> Cosine(steps=4, min_ratio=0.0).values()[-1]
    0.0
    """

    steps: int
    """Total length in steps."""
    warmup: int = 0
    """Warmup steps, included in ``steps``."""
    min_ratio: float = 0.0
    """Final multiplier, in [0, 1] (commonly 0.1)."""
    warmup_start: float = 0.0
    """Multiplier at the virtual step -1, where the warmup starts."""

    def __post_init__(self) -> None:
        check_int("cosine", "steps", self.steps, minimum=1)
        check_int("cosine", "warmup", self.warmup)
        if self.warmup >= self.steps:
            raise ConfigError(f"cosine.warmup: must leave a decay step, got warmup={self.warmup} with steps={self.steps}")
        check_ratio("cosine", "min_ratio", self.min_ratio)
        check_ratio("cosine", "warmup_start", self.warmup_start)
        set_float(self, "min_ratio")
        set_float(self, "warmup_start")

    @property
    def total_steps(self) -> int:
        return self.steps

    def _at(self, step: int) -> float:
        if step < self.warmup:
            return warmup_value(step, self.warmup, self.warmup_start, "linear")
        return decay_at(step - self.warmup, self.steps - self.warmup, "cosine", self.min_ratio, 1.0, None, 2)

    def phases(self) -> tuple[Phase, ...]:
        out = [Phase("warmup", 0, self.warmup)] if self.warmup else []
        return (*out, Phase("decay", self.warmup, self.steps))


@dataclass(frozen=True)
class DecayBranch(Schedule):
    """Hold ``main`` until ``fork_step``, then decay over ``decay_steps`` to ``min_ratio``.

    The decay starts from ``main.multiplier(fork_step)`` -- the LR the main branch would have
    used for that step, whatever it was -- so forking a WarmupStable main at W + S gives
    exactly ``WSD(W, S, D)``. ``fork_step`` = the number of main-branch updates in the
    checkpoint the branch starts from.

    Shape ``"tabulated"`` follows ``table`` instead of a formula: one multiplier per decay step
    (``len(table) == decay_steps``), as written out by an optimiser (``riverbed predict
    optimize``) and spliced onto the main branch at the fork (:func:`riverbed.runs.fork.schedule_request`).

    >>> from riverbed.schedules.core import WarmupStable
    >>> DecayBranch(WarmupStable(0), fork_step=2, decay_steps=2, shape="linear").values()
    [1.0, 1.0, 0.5, 0.0]
    >>> DecayBranch(WarmupStable(0), fork_step=2, decay_steps=2, shape="tabulated", table=(0.9, 0.3)).values()
    [1.0, 1.0, 0.9, 0.3]
    """

    main: Schedule
    """The schedule before the fork (usually a WarmupStable main branch)."""
    fork_step: int
    """First step of the decay (= steps in the checkpoint forked from)."""
    decay_steps: int
    """Decay length in steps (>= 1)."""
    shape: str = "1-sqrt"
    """Decay shape, one of riverbed.schedules.shapes.DECAY_SHAPES."""
    min_ratio: float = 0.0
    """Final multiplier relative to the peak, in [0, 1]."""
    half_life: float | None = None
    """exp-minicpm only: half-life in steps."""
    stages: int = 2
    """step only: number of equal stages."""
    table: tuple[float, ...] | None = None
    """tabulated only: the multiplier of each decay step (``decay_steps`` of them)."""

    def __post_init__(self) -> None:
        if not isinstance(self.main, Schedule):
            raise ConfigError(f"decay-branch.main: must be a schedule, got {self.main!r}")
        check_int("decay-branch", "fork_step", self.fork_step)
        check_int("decay-branch", "decay_steps", self.decay_steps, minimum=1)
        total = self.main.total_steps
        if total is not None and self.fork_step > total:
            raise ConfigError(f"decay-branch.fork_step: {self.fork_step} is past the end of the main schedule ({total} steps)")
        if self.shape == TABULATED:
            self._check_table()
            return
        if self.table is not None:
            raise ConfigError(f"decay-branch.table: only used by shape {TABULATED!r}, got a table with shape {self.shape!r}")
        _check_decay_fields("decay-branch", self)
        if self.shape in NEEDS_POSITIVE_MIN and not self.start_level > 0:
            raise ConfigError(
                f"decay-branch.fork_step: the main multiplier at step {self.fork_step} is {self.start_level!r}; "
                f"shape {self.shape!r} needs a positive start"
            )

    def _check_table(self) -> None:
        n = len(self.table) if isinstance(self.table, (list, tuple)) else None
        if n != self.decay_steps:
            raise ConfigError(f"decay-branch.table: shape {TABULATED!r} needs one multiplier per decay step "
                              f"({self.decay_steps}), got {n if n is not None else repr(self.table)}")
        object.__setattr__(self, "table", Tabulated(tuple(self.table)).table)  # each a finite number >= 0, as floats
        for name, default in (("min_ratio", 0.0), ("half_life", None), ("stages", 2)):
            if getattr(self, name) != default:
                raise ConfigError(f"decay-branch.{name}: not used by shape {TABULATED!r}, got {getattr(self, name)!r}")
        set_float(self, "min_ratio")

    @property
    def start_level(self) -> float:
        """The main multiplier the decay starts from."""
        return self.main._at(self.fork_step)

    def target_min(self) -> float | None:
        return self.table[-1] if self.table is not None else self.min_ratio

    @property
    def total_steps(self) -> int:
        return self.fork_step + self.decay_steps

    def _at(self, step: int) -> float:
        if step < self.fork_step:
            return self.main._at(step)
        j = step - self.fork_step
        if self.table is not None:
            return self.table[min(j, len(self.table) - 1)]
        return decay_at(j, self.decay_steps, self.shape, self.min_ratio, self.start_level, self.half_life, self.stages)

    def phases(self) -> tuple[Phase, ...]:
        out = []
        for ph in self.main.phases():
            if ph.start >= self.fork_step:
                break
            end = self.fork_step if ph.end is None else min(ph.end, self.fork_step)
            out.append(Phase(ph.name, ph.start, end))
        return (*out, Phase("decay", self.fork_step, self.total_steps))


def _check_budgets(owner: str, budgets: tuple[int, ...]) -> None:
    if not budgets:
        raise ConfigError(f"{owner}.budgets: needs at least one budget, got none")
    prev = 0
    for i, b in enumerate(budgets):
        check_int(owner, f"budgets[{i}]", b, minimum=1)
        if b <= prev:
            raise ConfigError(f"{owner}.budgets: must be strictly increasing, got {list(budgets)!r}")
        prev = b


@dataclass(frozen=True)
class WSDS(Schedule):
    """WSD-S: one branch that decays at every budget, then jumps back to the peak (no re-warmup).

    Period i covers steps [budgets[i-1], budgets[i]); its last ``decays[i]`` steps decay, so the
    checkpoint after ``budgets[i]`` steps is a finished model for that budget, and the next
    step resumes at the peak (OLMo-core ``WSDS`` semantics, in riverbed's step convention).

    >>> WSDS(budgets=(4, 8), warmup=0, decays=(2, 2), shape="linear").values()
    [1.0, 1.0, 0.5, 0.0, 1.0, 1.0, 0.5, 0.0]
    """

    budgets: tuple[int, ...]
    """Cumulative step counts where a decayed checkpoint is due, increasing."""
    warmup: int
    """Warmup steps at the start of the first period."""
    decays: tuple[int, ...]
    """Decay length of each period, in steps (one per budget)."""
    shape: str = "linear"
    """Decay shape (the WSD-S author configs use linear)."""
    min_ratio: float = 0.0
    """Multiplier at the end of every decay, in [0, 1]."""
    warmup_start: float = 0.0
    """Multiplier at the virtual step -1, where the warmup starts."""
    warmup_shape: str = "linear"
    """Warmup shape: linear, cosine or 1-sqrt."""
    half_life: float | None = None
    """exp-minicpm only: half-life in steps."""
    stages: int = 2
    """step only: number of equal stages."""

    def __post_init__(self) -> None:
        set_tuple(self, "budgets")
        set_tuple(self, "decays")
        _check_budgets("wsds", self.budgets)
        _check_warmup_fields("wsds", self)
        if len(self.decays) != len(self.budgets):
            raise ConfigError(f"wsds.decays: needs one decay per budget ({len(self.budgets)}), got {list(self.decays)!r}")
        prev = 0
        for i, (b, d) in enumerate(zip(self.budgets, self.decays)):
            check_int("wsds", f"decays[{i}]", d, minimum=1)
            room = b - prev - (self.warmup if i == 0 else 0)
            if d > room:
                raise ConfigError(
                    f"wsds.decays[{i}]: decay {d} is longer than its period ({room} steps after warmup) ending at budget {b}"
                )
            prev = b
        _check_decay_fields("wsds", self)

    @property
    def total_steps(self) -> int:
        return self.budgets[-1]

    def _at(self, step: int) -> float:
        if step < self.warmup:
            return warmup_value(step, self.warmup, self.warmup_start, self.warmup_shape)
        i = next((k for k, b in enumerate(self.budgets) if step < b), len(self.budgets) - 1)
        j = step - (self.budgets[i] - self.decays[i])
        if j < 0:
            return 1.0
        return decay_at(j, self.decays[i], self.shape, self.min_ratio, 1.0, self.half_life, self.stages)

    def phases(self) -> tuple[Phase, ...]:
        out = [Phase("warmup", 0, self.warmup)] if self.warmup else []
        prev = self.warmup
        for b, d in zip(self.budgets, self.decays):
            if b - d > prev:
                out.append(Phase("stable", prev, b - d))
            out.append(Phase("decay", b - d, b))
            prev = b
        return tuple(out)


@dataclass(frozen=True)
class CyclicCosine(Schedule):
    """Cycles of a full cosine from the peak to ``min_ratio``, ending at each budget.

    Cycle 0 starts with the warmup; later cycles re-warm linearly from ``min_ratio`` over
    ``rewarmup`` steps (0 = jump straight back to the peak).

    >>> CyclicCosine(budgets=(2, 4), min_ratio=0.0).values()
    [0.5, 0.0, 0.5, 0.0]
    """

    budgets: tuple[int, ...]
    """Cumulative step counts where each cycle ends, increasing."""
    warmup: int = 0
    """Warmup steps at the start of the first cycle."""
    rewarmup: int = 0
    """Linear re-warmup steps at the start of every later cycle."""
    min_ratio: float = 0.0
    """Multiplier at the end of every cycle, in [0, 1]."""
    warmup_start: float = 0.0
    """Multiplier at the virtual step -1, where the first warmup starts."""

    def __post_init__(self) -> None:
        set_tuple(self, "budgets")
        _check_budgets("cyclic-cosine", self.budgets)
        check_int("cyclic-cosine", "warmup", self.warmup)
        check_int("cyclic-cosine", "rewarmup", self.rewarmup)
        check_ratio("cyclic-cosine", "min_ratio", self.min_ratio)
        check_ratio("cyclic-cosine", "warmup_start", self.warmup_start)
        set_float(self, "min_ratio")
        set_float(self, "warmup_start")
        prev = 0
        for i, b in enumerate(self.budgets):
            warm = self.warmup if i == 0 else self.rewarmup
            if warm >= b - prev:
                name = "warmup" if i == 0 else "rewarmup"
                raise ConfigError(f"cyclic-cosine.{name}: {warm} leaves no cosine steps in cycle {i} ({b - prev} steps)")
            prev = b

    @property
    def total_steps(self) -> int:
        return self.budgets[-1]

    def _at(self, step: int) -> float:
        i = next((k for k, b in enumerate(self.budgets) if step < b), len(self.budgets) - 1)
        start = self.budgets[i - 1] if i else 0
        warm = self.warmup if i == 0 else self.rewarmup
        local = step - start
        if local < warm:
            return warmup_value(local, warm, self.warmup_start if i == 0 else self.min_ratio, "linear")
        return decay_at(local - warm, self.budgets[i] - start - warm, "cosine", self.min_ratio, 1.0, None, 2)

    def phases(self) -> tuple[Phase, ...]:
        out: list[Phase] = []
        prev = 0
        for i, b in enumerate(self.budgets):
            warm = self.warmup if i == 0 else self.rewarmup
            if warm:
                out.append(Phase("warmup", prev, prev + warm))
            out.append(Phase("decay", prev + warm, b))
            prev = b
        return tuple(out)

