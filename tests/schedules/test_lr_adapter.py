"""RiverbedLR: state is the step; resume is exact; a changed schedule warns or raises."""

from __future__ import annotations

import warnings

import pytest
import torch

from riverbed.errors import ConfigError
from riverbed.schedules import WSD, WarmupStable
from riverbed.schedules.torch import RiverbedLR, ScheduleChangedWarning

SCHEDULE = WSD(warmup=3, stable=4, decay=5, shape="cosine", min_ratio=0.1)
LR = 0.05


def _setup(schedule=SCHEDULE, **kw):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    return model, opt, RiverbedLR(opt, schedule, **kw)


def _train(model, opt, sched, steps, start):
    lrs = []
    for step in range(start, start + steps):
        g = torch.Generator().manual_seed(step)
        x = torch.randn(8, 4, generator=g)
        lrs.append(opt.param_groups[0]["lr"])
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
        sched.step()
    return lrs


def test_lr_follows_the_schedule():
    model, opt, sched = _setup()
    lrs = _train(model, opt, sched, 12, 0)
    assert lrs == [LR * m for m in SCHEDULE.values()]
    assert sched.state_dict()["step"] == 12


def test_resume_is_exact():
    model, opt, sched = _setup()
    full = _train(model, opt, sched, 12, 0)
    final = [p.detach().clone() for p in model.parameters()]

    model, opt, sched = _setup()
    first = _train(model, opt, sched, 5, 0)
    saved = (model.state_dict(), opt.state_dict(), sched.state_dict())
    assert set(saved[2]) == {"step", "fingerprint", "multiplier"}

    model2 = torch.nn.Linear(4, 2)
    model2.load_state_dict(saved[0])
    opt2 = torch.optim.AdamW(model2.parameters(), lr=LR)
    opt2.load_state_dict(saved[1])
    sched2 = RiverbedLR(opt2, SCHEDULE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched2.load_state_dict(saved[2])
    rest = _train(model2, opt2, sched2, 7, 5)
    assert first + rest == full
    for a, b in zip(model2.parameters(), final):
        assert torch.equal(a, b)


def _resume(schedule, state, on_change):
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    sched = RiverbedLR(opt, schedule, on_change=on_change)
    sched.load_state_dict(state)
    return opt, sched


def test_changed_schedule_warns_with_old_and_new_lr():
    _, opt, sched = _setup()
    for _ in range(8):
        opt.step()
        sched.step()
    state = sched.state_dict()  # step 8, multiplier of the first decay step
    longer = WSD(warmup=3, stable=40, decay=5, shape="cosine", min_ratio=0.1)
    old = LR * SCHEDULE.multiplier(8)
    with pytest.warns(ScheduleChangedWarning, match=rf"step 8 would jump from {old:.6g} .* to {LR:.6g}"):
        opt2, _ = _resume(longer, state, "warn")
    assert opt2.param_groups[0]["lr"] == LR  # the new schedule wins


def test_changed_schedule_can_raise():
    _, opt, sched = _setup()
    for _ in range(8):
        opt.step()
        sched.step()
    with pytest.raises(ConfigError, match="schedule changed on resume"):
        _resume(WarmupStable(warmup=3), sched.state_dict(), "error")


def test_change_without_a_jump_is_silent():
    _, opt, sched = _setup()
    for _ in range(5):  # in the stable phase
        opt.step()
        sched.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt2, sched2 = _resume(WSD(warmup=3, stable=40, decay=5), sched.state_dict(), "error")
    assert sched2.last_epoch == 5 and opt2.param_groups[0]["lr"] == LR


def test_bad_policy_and_state():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    with pytest.raises(ConfigError, match="on_change"):
        RiverbedLR(opt, SCHEDULE, on_change="ignore")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="missing key 'fingerprint'"):
        RiverbedLR(opt, SCHEDULE).load_state_dict({"step": 3})
