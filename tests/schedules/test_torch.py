"""RiverbedLR: state is the step; resume is exact; a changed schedule warns or raises."""

from __future__ import annotations

import logging
import warnings

import pytest
import torch

from riverbed.errors import ConfigError
from riverbed.schedules import WSD, DecayBranch, WarmupStable, hf_wsd
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
    assert set(saved[2]) == {"step", "last_epoch", "fingerprint", "multiplier"}
    assert saved[2]["last_epoch"] == saved[2]["step"] == 5

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
    with pytest.raises(ConfigError, match="on_change: must be one of warn, error, ignore, got 'quiet'"):
        RiverbedLR(opt, SCHEDULE, on_change="quiet")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"neither a riverbed state .* got keys \['step'\]"):
        RiverbedLR(opt, SCHEDULE).load_state_dict({"step": 3})
    with pytest.raises(ConfigError, match="missing key 'multiplier'"):
        RiverbedLR(opt, SCHEDULE).load_state_dict({"step": 3, "fingerprint": "x"})
    with pytest.raises(ConfigError, match="last_epoch must be an integer >= -1, got 'x'"):
        RiverbedLR(opt, SCHEDULE).load_state_dict({"last_epoch": "x"})
    good = RiverbedLR(opt, SCHEDULE).state_dict()
    with pytest.raises(ConfigError, match="step=0 and last_epoch=4 disagree"):
        RiverbedLR(opt, SCHEDULE).load_state_dict({**good, "last_epoch": 4})


def _state_at(step, schedule=SCHEDULE):
    _, opt, sched = _setup(schedule)
    for _ in range(step):
        opt.step()
        sched.step()
    return sched.state_dict()


def test_changed_schedule_is_logged_too(caplog):
    # transformers.Trainer drops a lone warning raised while it loads the scheduler; a log record survives
    longer = WSD(warmup=3, stable=40, decay=5, shape="cosine", min_ratio=0.1)
    with caplog.at_level(logging.WARNING, logger="riverbed.schedules"), pytest.warns(ScheduleChangedWarning):
        _resume(longer, _state_at(8), "warn")
    assert [r.name for r in caplog.records] == ["riverbed.schedules"]
    assert "schedule changed on resume: LR at step 8 would jump" in caplog.records[0].getMessage()


def test_ignore_accepts_a_change_silently(caplog):
    with warnings.catch_warnings(), caplog.at_level(logging.DEBUG, logger="riverbed.schedules"):
        warnings.simplefilter("error")
        opt, sched = _resume(WarmupStable(warmup=3), _state_at(8), "ignore")
    assert not caplog.records and sched.last_epoch == 8 and opt.param_groups[0]["lr"] == LR


def test_fork_continues_the_step_with_the_branch_schedule(caplog):
    main = WarmupStable(warmup=3)
    state = _state_at(20, main)
    branch = DecayBranch(main=main, fork_step=20, decay_steps=6, shape="linear", min_ratio=0.0)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    with warnings.catch_warnings(), caplog.at_level(logging.INFO, logger="riverbed.schedules"):
        warnings.simplefilter("error")
        sched = RiverbedLR.fork(opt, state, branch)
    assert sched.last_epoch == 20 and sched.fingerprint != state["fingerprint"]
    assert opt.param_groups[0]["lr"] == pytest.approx(LR * branch.multiplier(20))
    assert "forked at step 20" in caplog.text
    lrs = _train(model, opt, sched, 6, 20)
    assert lrs == [LR * branch.multiplier(s) for s in range(20, 26)] and lrs[-1] == 0.0
    # the branch's own state resumes exactly, and a change to it is caught as usual
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _resume(branch, sched.state_dict(), "error")
    with pytest.raises(ConfigError, match="schedule changed on resume"):
        _resume(main, sched.state_dict(), "error")
    with pytest.raises(ConfigError, match="on_change"):
        RiverbedLR.fork(opt, state, branch, on_change="nope")  # type: ignore[arg-type]


def test_switch_from_hf_wsd_mid_run_keeps_the_step():
    transformers = pytest.importorskip("transformers")
    kw = {"num_warmup_steps": 3, "num_decay_steps": 5, "num_training_steps": 12, "decay_type": "cosine",
          "min_lr_ratio": 0.1}
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    hf = transformers.get_wsd_schedule(opt, **kw)
    hf_lrs = []
    for _ in range(12):
        hf_lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        hf.step()
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    hf = transformers.get_wsd_schedule(opt, **kw)
    for _ in range(5):
        opt.step()
        hf.step()
    state = hf.state_dict()
    assert "last_epoch" in state and "fingerprint" not in state
    opt2 = torch.optim.AdamW(model.parameters(), lr=LR)
    sched = RiverbedLR(opt2, hf_wsd(**kw), on_change="error")  # the same schedule: no change, no error
    sched.load_state_dict(state)
    assert sched.last_epoch == 5
    rest = _train(model, opt2, sched, 7, 5)
    assert rest == pytest.approx(hf_lrs[5:], rel=1e-12)
    with pytest.raises(ConfigError, match="switching to riverbed: LR at step 5 would jump"):
        RiverbedLR(torch.optim.AdamW(model.parameters(), lr=LR), WarmupStable(warmup=10), on_change="error").load_state_dict(state)
    with pytest.warns(ScheduleChangedWarning, match="switching to riverbed"):
        RiverbedLR(torch.optim.AdamW(model.parameters(), lr=LR), WarmupStable(warmup=10)).load_state_dict(state)
