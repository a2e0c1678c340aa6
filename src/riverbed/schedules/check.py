"""Static check of a schedule before launch: jumps, min LR reached, decay share, checkpoints.

A checkpoint "at step c" holds the model after c updates; the LR it was last trained with is
``multiplier(c - 1)``, which is what the report lists for it.

>>> from riverbed.schedules.wsd import WSD
>>> r = check_schedule(WSD(10, 70, 20, shape="linear", min_ratio=0.1), checkpoints=[80, 100])
>>> r.min_reached, r.decay_fraction, [round(m, 3) for _, m in r.checkpoints]
(True, 0.2, [1.0, 0.1])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from riverbed.errors import ConfigError
from riverbed.schedules.core import Phase, Schedule

# Full scans up to this many steps; longer schedules are checked around every phase boundary
# (where jumps can happen) plus an even sample inside the phases.
FULL_SCAN_STEPS = 200_000
_SAMPLES = 20_000
# A tolerance for "reached the minimum": decays end exactly at min in riverbed's convention,
# so anything beyond float rounding means the last step stops short.
_MIN_TOL = 1e-9


@dataclass(frozen=True)
class Jump:
    step: int
    """The step whose multiplier differs from the previous step's by more than the tolerance."""
    before: float
    after: float


@dataclass(frozen=True)
class ScheduleReport:
    total_steps: int | None
    phases: tuple[Phase, ...]
    first: float
    """Multiplier of step 0."""
    last: float | None
    """Multiplier of the last planned step (None when indefinite)."""
    target_min: float | None
    """What the schedule decays to (None when it does not decay)."""
    min_reached: bool | None
    """Whether the last planned step is at the target minimum."""
    decay_steps: int
    decay_fraction: float | None
    """Share of planned steps spent in decay phases."""
    max_change: float
    """Largest |multiplier(s) - multiplier(s - 1)| found."""
    jumps: tuple[Jump, ...]
    checkpoints: tuple[tuple[int, float], ...] = field(default_factory=tuple)
    """(checkpoint step c, multiplier of its last update c - 1)."""
    full_scan: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def _steps_to_scan(schedule: Schedule, n: int) -> tuple[list[int], bool]:
    if n <= FULL_SCAN_STEPS:
        return list(range(n)), True
    pts: set[int] = set(range(0, n, max(1, n // _SAMPLES)))
    for ph in schedule.phases():
        for b in (ph.start, ph.end):
            if b is not None:
                pts.update(s for s in range(b - 2, b + 3) if 0 <= s < n)
    pts.add(n - 1)
    return sorted(pts), False


def check_schedule(
    schedule: Schedule,
    checkpoints: list[int] | None = None,
    *,
    jump_tol: float = 0.1,
    steps: int | None = None,
) -> ScheduleReport:
    """Report on ``schedule`` over its planned steps (or ``steps`` for an indefinite one).

    ``jump_tol``: a change of the multiplier between consecutive steps above this is listed
    as a jump (WSD-S restarts and step decays are jumps by design; short warmups may be too).
    """
    n = schedule.total_steps if steps is None else steps
    if n is None:
        n = max([1] + [p.start + 1 for p in schedule.phases()] + [c for c in checkpoints or []])
    checks = []
    for c in checkpoints or []:
        if isinstance(c, bool) or not isinstance(c, int) or c < 1:
            raise ConfigError(f"checkpoints: each must be a step >= 1 (updates done), got {c!r}")
        checks.append((c, schedule.multiplier(c - 1)))
    scan, full = _steps_to_scan(schedule, n)
    values = {s: schedule.multiplier(s) for s in scan}
    jumps, max_change = [], 0.0
    for s in scan[1:]:
        if s - 1 not in values:
            continue
        d = abs(values[s] - values[s - 1])
        max_change = max(max_change, d)
        if d > jump_tol + 1e-12:  # a warmup of exactly 1/jump_tol steps is not a jump
            jumps.append(Jump(s, values[s - 1], values[s]))
    phases = schedule.phases()
    decay = sum(min(p.end if p.end is not None else n, n) - p.start for p in phases if p.name == "decay" and p.start < n)
    total = schedule.total_steps
    target = schedule.target_min()
    last = values[n - 1] if total is not None else None
    reached = None if (target is None or last is None) else abs(last - target) <= _MIN_TOL
    return ScheduleReport(
        total_steps=total,
        phases=phases,
        first=values[0],
        last=last,
        target_min=target,
        min_reached=reached,
        decay_steps=decay,
        decay_fraction=decay / total if total else None,
        max_change=max_change,
        jumps=tuple(jumps),
        checkpoints=tuple(checks),
        full_scan=full,
    )
