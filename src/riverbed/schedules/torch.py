"""Torch adapter: a riverbed schedule as a ``torch.optim.lr_scheduler.LRScheduler``.

Its state is the step (plus a fingerprint of the schedule and the multiplier it gave at that
step, used only to detect a changed schedule): the schedule itself is rebuilt from config,
as torchtitan does. Resuming with the same schedule is exact. Resuming with a different one
is explicit: if the LR at the resumed step would jump, ``on_change="warn"`` emits a
``ScheduleChangedWarning`` naming the old and new LR *and* logs it on the ``riverbed.schedules``
logger (``transformers.Trainer`` swallows a lone warning raised while it loads a scheduler, a
log record still reaches the user), ``"error"`` raises ConfigError and ``"ignore"`` accepts it
silently. A changed schedule that agrees at the resumed step (say, a longer stable phase) is
silent. To branch a decay off a main-branch state on purpose, use :meth:`RiverbedLR.fork`.

A torch / Hugging Face scheduler state (``LambdaLR`` from ``get_wsd_schedule``, ...: a dict
with ``last_epoch``) loads too, so a run can switch to riverbed mid-way and keep its step; if
the LR it recorded differs from the riverbed schedule's at that step, that is a change as above.

Usage: call ``scheduler.step()`` after each ``optimizer.step()``, as for any torch scheduler.

>>> import torch
>>> from riverbed.schedules import WSD
>>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
>>> sched = RiverbedLR(opt, WSD(2, 0, 2, shape="linear"))
>>> round(opt.param_groups[0]["lr"], 6)
0.05
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from riverbed.errors import ConfigError
from riverbed.schedules.core import Schedule
from riverbed.schedules.spec import schedule_fingerprint, schedule_from_spec


class ScheduleChangedWarning(UserWarning):
    """A resumed run's schedule gives a different LR at the resumed step than the saved one."""


OnChange = Literal["warn", "error", "ignore"]
ON_CHANGE = ("warn", "error", "ignore")

log = logging.getLogger("riverbed.schedules")


class RiverbedLR(LRScheduler):
    """``LRScheduler`` whose LR for update ``s`` is ``base_lr * schedule.multiplier(s)``."""

    def __init__(
        self,
        optimizer: Optimizer,
        schedule: Schedule | dict[str, Any],
        *,
        on_change: OnChange = "warn",
        last_epoch: int = -1,
    ) -> None:
        _check_on_change(on_change)
        self.schedule = schedule_from_spec(schedule) if isinstance(schedule, dict) else schedule
        self.on_change = on_change
        self.fingerprint = schedule_fingerprint(self.schedule)
        super().__init__(optimizer, last_epoch)

    @classmethod
    def fork(cls, optimizer: Optimizer, state: dict[str, Any], schedule: Schedule | dict[str, Any], *,
             on_change: OnChange = "warn") -> RiverbedLR:
        """Continue from a main-branch scheduler ``state`` with a decay-branch ``schedule``, on purpose.

        The scheduler resumes at the state's step (a riverbed or torch/HF state) and follows the
        new ``schedule`` from there, typically a ``DecayBranch`` forked at that step: the LR change
        is the point of a fork, so nothing is warned (one INFO record on ``riverbed.schedules``
        says what was forked). The returned scheduler fingerprints the *branch* schedule, so a
        later resume of the branch with the same schedule is exact, and one with yet another
        schedule is handled by ``on_change`` as usual.
        """
        _check_on_change(on_change)
        sched = cls(optimizer, schedule, on_change="ignore")
        sched.load_state_dict(state)
        log.info("forked at step %d: following schedule %s (from %s) at LR %.6g", sched.last_epoch,
                 sched.fingerprint, state.get("fingerprint", "a torch scheduler state"), sched.get_last_lr()[0])
        sched.on_change = on_change
        return sched

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
        # "last_epoch" is torch's name for the step, so torch-side tools read it too
        return {
            "step": self.last_epoch,
            "last_epoch": self.last_epoch,
            "fingerprint": self.fingerprint,
            "multiplier": self.schedule.multiplier(max(self.last_epoch, 0)),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not isinstance(state_dict, dict):
            raise ConfigError(f"scheduler state: expected a dict, got {type(state_dict).__name__}")
        if "fingerprint" in state_dict:
            step = self._load_riverbed(state_dict)
        elif "last_epoch" in state_dict:
            step = self._load_torch(state_dict)
        else:
            raise ConfigError("scheduler state: neither a riverbed state (step, fingerprint, multiplier) nor a torch "
                              f"one (last_epoch); got keys {sorted(state_dict)}")
        self.last_epoch = step
        values = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = values

    def _load_riverbed(self, state: dict[str, Any]) -> int:
        for key in ("step", "fingerprint", "multiplier"):
            if key not in state:
                raise ConfigError(f"scheduler state: missing key {key!r} (got {sorted(state)})")
        step = _int_step(state, "step")
        if "last_epoch" in state and _int_step(state, "last_epoch") != step:
            raise ConfigError(f"scheduler state: step={state['step']} and last_epoch={state['last_epoch']} disagree")
        if state["fingerprint"] != self.fingerprint:
            old_m = float(state["multiplier"])
            new_m = self.schedule.multiplier(max(step, 0))
            if abs(old_m - new_m) > 1e-12 * max(1.0, abs(old_m)):
                base = float(self.base_lrs[0])
                self._changed(
                    f"schedule changed on resume: LR at step {step} would jump from {old_m * base:.6g} "
                    f"(multiplier {old_m:.6g}, schedule {state['fingerprint']}) to {new_m * base:.6g} "
                    f"(multiplier {new_m:.6g}, schedule {self.fingerprint})")
        return step

    def _load_torch(self, state: dict[str, Any]) -> int:
        step = _int_step(state, "last_epoch")
        old = state.get("_last_lr")
        if isinstance(old, (list, tuple)) and old and all(isinstance(v, (int, float)) for v in old):
            new = [base * self.schedule.multiplier(max(step, 0)) for base in self.base_lrs]
            # a foreign schedule computes the same LR in its own float order: allow rounding
            if any(abs(a - b) > 1e-9 * max(abs(a), abs(b), 1e-30) for a, b in zip(old, new)):
                self._changed(
                    f"schedule changed on switching to riverbed: LR at step {step} would jump from {old[0]:.6g} "
                    f"(the torch scheduler state) to {new[0]:.6g} (schedule {self.fingerprint})")
        return step

    def _changed(self, msg: str) -> None:
        if self.on_change == "ignore":
            return
        if self.on_change == "error":
            raise ConfigError(msg + " (pass on_change='warn' or 'ignore' to accept it, or use RiverbedLR.fork)")
        log.warning(msg)
        warnings.warn(msg, ScheduleChangedWarning, stacklevel=4)


def _check_on_change(on_change: str) -> None:
    if on_change not in ON_CHANGE:
        raise ConfigError(f"on_change: must be one of {', '.join(ON_CHANGE)}, got {on_change!r}")


def _int_step(state: dict[str, Any], key: str) -> int:
    value = state[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise ConfigError(f"scheduler state: {key} must be an integer >= -1, got {value!r}")
    return value
