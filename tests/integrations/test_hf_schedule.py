"""riverbed schedules under a real transformers.Trainer: wiring, LR per step, resume with a changed schedule."""

from __future__ import annotations

import logging

import pytest

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")  # the Trainer needs it
torch = pytest.importorskip("torch")

from riverbed.errors import ConfigError  # noqa: E402
from riverbed.integrations.hf import (  # noqa: E402
    decay_parameter_groups,
    riverbed_optimizers,
    wsd_from_args,
    wsd_scheduler,
)
from riverbed.schedules import WSD, hf_wsd  # noqa: E402
from riverbed.schedules.torch import RiverbedLR  # noqa: E402

from ._tiny import Patterned, tiny_llama  # noqa: E402

LR = 1e-2


class _LRs(transformers.TrainerCallback):
    """The LR of every param group for each update (read just before the update)."""

    def __init__(self) -> None:
        self.lrs: dict[int, list[float]] = {}

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        self.lrs[state.global_step] = [g["lr"] for g in optimizer.param_groups]


def _args(tmp_path, steps: int, **kw):
    return transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=steps, per_device_train_batch_size=8, learning_rate=LR,
        weight_decay=0.1, logging_steps=1, report_to="none", use_cpu=True, disable_tqdm=True, seed=0,
        dataloader_num_workers=0, **{"save_strategy": "no", **kw})


def _trainer(model, args, optimizers, lrs):
    return transformers.Trainer(model=model, args=args, train_dataset=Patterned(64), optimizers=optimizers,
                                callbacks=[lrs])


def test_trainer_follows_the_riverbed_schedule_with_trainers_grouping(tmp_path):
    args = _args(tmp_path, 10, warmup_steps=2)
    schedule = wsd_from_args(args, decay=0.4, shape="linear", min_ratio=0.1)
    assert schedule == WSD(warmup=2, stable=4, decay=4, shape="linear", min_ratio=0.1)
    model = tiny_llama()
    optimizer, scheduler = riverbed_optimizers(model, args, schedule)
    # the same two groups as Trainer's own create_optimizer: biases and norm weights undecayed
    reference = transformers.Trainer(model=model, args=args).create_optimizer()
    assert [[id(p) for p in g["params"]] for g in optimizer.param_groups] == \
        [[id(p) for p in g["params"]] for g in reference.param_groups]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]
    no_decay = {n for n, p in model.named_parameters() if any(p is q for q in optimizer.param_groups[1]["params"])}
    assert no_decay and all("norm" in n for n in no_decay)
    assert type(optimizer) is type(reference)
    lrs = _LRs()
    _trainer(model, args, (optimizer, scheduler), lrs).train()
    assert sorted(lrs.lrs) == list(range(10))
    for step, group_lrs in lrs.lrs.items():
        assert group_lrs == [LR * schedule.multiplier(step)] * 2, step
    assert lrs.lrs[9][0] == pytest.approx(LR * 0.1)


# A decays from step 2 on; B is still stable at step 4: resuming at 4 would jump 0.55 -> 1 (x LR).
A = WSD(warmup=0, stable=2, decay=6, shape="linear", min_ratio=0.1)
B = WSD(warmup=0, stable=6, decay=2, shape="linear", min_ratio=0.1)


def _first_half(tmp_path):
    args = _args(tmp_path, 8, save_strategy="steps", save_steps=4)
    model = tiny_llama()
    lrs = _LRs()
    trainer = _trainer(model, args, riverbed_optimizers(model, args, A), lrs)
    trainer.train()
    return args, tmp_path / "out" / "checkpoint-4", lrs.lrs


def _resume(args, ckpt, schedule, **kw):
    model = tiny_llama(seed=1)
    lrs = _LRs()
    trainer = _trainer(model, args, riverbed_optimizers(model, args, schedule, **kw), lrs)
    trainer.train(resume_from_checkpoint=str(ckpt))
    return lrs.lrs


def test_trainer_resume_with_a_changed_schedule_reaches_the_user(tmp_path, caplog):
    args, ckpt, full = _first_half(tmp_path)
    assert ckpt.is_dir()
    # the same schedule: exact, silent
    with caplog.at_level(logging.WARNING, logger="riverbed.schedules"):
        same = _resume(args, ckpt, A)
    assert sorted(same) == [4, 5, 6, 7] and all(same[s] == full[s] for s in same)
    assert not caplog.records
    # a changed schedule: the default under Trainer is to refuse
    with pytest.raises(ConfigError, match=r"schedule changed on resume: LR at step 4 would jump from 0\.0055 "):
        _resume(args, ckpt, B)
    # on_change="warn": Trainer drops the lone warning, the log record still reaches the user
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="riverbed.schedules"):
        changed = _resume(args, ckpt, B, on_change="warn")
    messages = [r.getMessage() for r in caplog.records if r.name == "riverbed.schedules"]
    assert len(messages) == 1 and "LR at step 4 would jump from 0.0055" in messages[0] and "to 0.01 " in messages[0]
    assert changed[4] == [LR * B.multiplier(4)] * 2  # the new schedule wins, at the saved step
    # on_change="ignore": accepted without a word
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="riverbed.schedules"):
        _resume(args, ckpt, B, on_change="ignore")
    assert not [r for r in caplog.records if r.name == "riverbed.schedules"]


def test_switch_from_trainers_own_wsd_to_riverbed_on_resume(tmp_path):
    # the first half runs on Trainer's built-in WSD (a LambdaLR); the resume switches to riverbed
    args = _args(tmp_path, 8, save_strategy="steps", save_steps=4, warmup_steps=2,
                 lr_scheduler_type="warmup_stable_decay", lr_scheduler_kwargs={"num_decay_steps": 4})
    model, lrs = tiny_llama(), _LRs()
    transformers.Trainer(model=model, args=args, train_dataset=Patterned(64), callbacks=[lrs]).train()
    ckpt = tmp_path / "out" / "checkpoint-4"
    # the same schedule as riverbed's hf preset: the step is kept, exact and silent (on_change="error")
    same = _resume(args, ckpt, hf_wsd(num_warmup_steps=2, num_decay_steps=4, num_training_steps=8))
    assert sorted(same) == [4, 5, 6, 7]
    for s in same:
        assert same[s] == pytest.approx(lrs.lrs[s], rel=1e-12), s
    # a riverbed schedule that disagrees at step 4 is caught, although the saved state is not riverbed's
    with pytest.raises(ConfigError, match="switching to riverbed: LR at step 4 would jump"):
        _resume(args, ckpt, A)


def test_wsd_scheduler_and_bad_arguments(tmp_path):
    model = tiny_llama()
    args = _args(tmp_path, 20, warmup_steps=0.1)  # a fraction: Trainer's own rounding (ceil)
    opt = torch.optim.AdamW(decay_parameter_groups(model, 0.0), lr=LR)
    sched = wsd_scheduler(opt, args, decay=5, shape="cosine")
    assert isinstance(sched, RiverbedLR) and sched.on_change == "error"
    assert sched.schedule == WSD(warmup=2, stable=13, decay=5, shape="cosine")
    with pytest.raises(ConfigError, match="num_training_steps: give it"):
        wsd_from_args(_args(tmp_path, -1, num_train_epochs=1), decay=5)
    assert wsd_from_args(_args(tmp_path, -1, num_train_epochs=1), decay=5, num_training_steps=50).total_steps == 50
    with pytest.raises(ConfigError, match=r"decay=1\.5: a float is a fraction"):
        wsd_from_args(args, decay=1.5)
    with pytest.raises(ConfigError, match="longer than the schedule"):
        wsd_from_args(args, decay=30)
