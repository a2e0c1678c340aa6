"""Torch adapter: a riverbed schedule as a ``torch.optim.lr_scheduler.LRScheduler``.

Its state is the step (plus a fingerprint of the schedule and the multiplier it gave at that
step, used only to detect a changed schedule): the schedule itself is rebuilt from config,
as torchtitan does. Resuming with the same schedule is exact. Resuming with a different one
is explicit: if the LR at the resumed step would jump, ``on_change="warn"`` emits a
``ScheduleChangedWarning`` naming the old and new LR, ``"error"`` raises ConfigError. A
changed schedule that agrees at the resumed step (say, a longer stable phase) is silent.

Usage: call ``scheduler.step()`` after each ``optimizer.step()``, as for any torch scheduler.

>>> import torch
>>> from riverbed.schedules import WSD
>>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
>>> sched = RiverbedLR(opt, WSD(2, 0, 2, shape="linear"))
>>> round(opt.param_groups[0]["lr"], 6)
0.05
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from riverbed.errors import ConfigError
from riverbed.schedules.core import Schedule
from riverbed.schedules.spec import schedule_fingerprint, schedule_from_spec


class ScheduleChangedWarning(UserWarning):
    """A resumed run's schedule gives a different LR at the resumed step than the saved one."""


class RiverbedLR(LRScheduler):
    """``LRScheduler`` whose LR for update ``s`` is ``base_lr * schedule.multiplier(s)``."""

    def __init__(
        self,
        optimizer: Optimizer,
        schedule: Schedule | dict[str, Any],
        *,
        on_change: Literal["warn", "error"] = "warn",
        last_epoch: int = -1,
    ) -> None:
        if on_change not in ("warn", "error"):
            raise ConfigError(f"on_change: must be 'warn' or 'error', got {on_change!r}")
        self.schedule = schedule_from_spec(schedule) if isinstance(schedule, dict) else schedule
        self.on_change = on_change
        self.fingerprint = schedule_fingerprint(self.schedule)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        m = self.schedule.multiplier(max(self.last_epoch, 0))
        return [base * m for base in self.base_lrs]

    # torch's closed form is the same function; keep both paths identical.
    _get_closed_form_lr = get_lr

    @property
    def step_index(self) -> int:
        """The 0-based step whose update the optimizer's current LR is for."""
        return self.last_epoch

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.last_epoch,
            "fingerprint": self.fingerprint,
            "multiplier": self.schedule.multiplier(max(self.last_epoch, 0)),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for key in ("step", "fingerprint", "multiplier"):
            if key not in state_dict:
                raise ConfigError(f"scheduler state: missing key {key!r} (got {sorted(state_dict)})")
        step = int(state_dict["step"])
        if state_dict["fingerprint"] != self.fingerprint:
            old_m = float(state_dict["multiplier"])
            new_m = self.schedule.multiplier(max(step, 0))
            if abs(old_m - new_m) > 1e-12 * max(1.0, abs(old_m)):
                base = float(self.base_lrs[0])
                msg = (
                    f"schedule changed on resume: LR at step {step} would jump from {old_m * base:.6g} "
                    f"(multiplier {old_m:.6g}, schedule {state_dict['fingerprint']}) to {new_m * base:.6g} "
                    f"(multiplier {new_m:.6g}, schedule {self.fingerprint})"
                )
                if self.on_change == "error":
                    raise ConfigError(msg)
                warnings.warn(msg, ScheduleChangedWarning, stacklevel=2)
        self.last_epoch = step
        values = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = values
