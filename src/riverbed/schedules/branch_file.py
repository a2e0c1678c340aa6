"""The schedule file of a decay branch trained by the user's own command (``{schedule}`` of
``riverbed branch RUN --command 'CMD'``)::

    {"lr": 0.003, "schedule": {"type": "decay-branch", ...}, "start_step": 800, "end_step": 1000}

The LR of update ``s`` (0-based, counted from the start of the run) is
``lr * schedule.multiplier(s)``; the branch trains updates ``start_step .. end_step - 1`` from
the fork checkpoint (which holds ``start_step`` updates) and ends with ``end_step`` of them.
A plain loop reads it as::

    b = read_branch_schedule(sys.argv[1])
    for step in range(b.start_step, b.end_step):
        for group in optimizer.param_groups:
            group["lr"] = b.lr_at(step)
        ...

>>> b = BranchSchedule(1.0, {"type": "decay-branch", "main": {"type": "constant"}, "fork_step": 2,
...                          "decay_steps": 2, "shape": "linear"}, 2, 4)
>>> [b.lr_at(s) for s in range(4)]
[1.0, 1.0, 0.5, 0.0]
>>> read_branch_schedule_text(b.to_json(), "s.json") == b
True
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from riverbed.errors import ConfigError
from riverbed.schedules.core import Schedule
from riverbed.schedules.spec import schedule_from_spec, schedule_to_spec


@dataclass(frozen=True)
class BranchSchedule:
    """A decay branch's peak LR, schedule spec and step range (see the module doc)."""

    lr: float
    spec: dict[str, Any]
    start_step: int
    end_step: int
    schedule: Schedule = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedule", schedule_from_spec(self.spec, where="schedule"))
        object.__setattr__(self, "spec", schedule_to_spec(self.schedule))  # one canonical form
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr: must be a positive number, got {self.lr!r}")
        if not (0 <= self.start_step < self.end_step):
            raise ConfigError(f"start_step {self.start_step}, end_step {self.end_step}: need 0 <= start_step < end_step")

    @property
    def steps(self) -> int:
        """Updates the branch trains."""
        return self.end_step - self.start_step

    def lr_at(self, step: int) -> float:
        """The LR of update ``step`` (0-based, counted from the start of the run)."""
        return self.lr * self.schedule.multiplier(step)

    def to_json(self) -> str:
        return json.dumps({"lr": self.lr, "schedule": schedule_to_spec(self.schedule), "start_step": self.start_step,
                           "end_step": self.end_step}, indent=2) + "\n"


def read_branch_schedule_text(text: str, source: str) -> BranchSchedule:
    try:
        d = json.loads(text)
        return BranchSchedule(float(d["lr"]), dict(d["schedule"]), int(d["start_step"]), int(d["end_step"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{source}: not a branch schedule file ({type(exc).__name__}: {exc}); expected "
                          '{"lr", "schedule", "start_step", "end_step"}') from None
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def read_branch_schedule(path: str | Path) -> BranchSchedule:
    """Read the ``{schedule}`` file of a decay branch; ConfigError names the file."""
    p = Path(path)
    try:
        return read_branch_schedule_text(p.read_text(encoding="utf-8"), str(p))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror or exc})") from None
