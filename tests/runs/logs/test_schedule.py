"""Which schedule a logged LR follows: warmup-stable, Hugging Face's cosine and linear (off by one
update in their logging convention), and a refusal for anything else."""

from __future__ import annotations

import math

import numpy as np
import pytest

from riverbed.errors import LogError
from riverbed.runs.logs.schedule import infer_schedule, warmup_length


def _hf(kind, total, warmup, peak=1e-3, every=10):
    """The LR Hugging Face logs at step s (its scheduler after s steps: the LR of the next update)."""
    steps = np.arange(every, total + 1, every)

    def lam(s):
        if s < warmup:
            return s / warmup
        p = (s - warmup) / (total - warmup)
        return {"constant": 1.0, "linear": 1 - p, "cosine": 0.5 * (1 + math.cos(math.pi * p))}[kind]

    return steps, peak * np.array([lam(int(s)) for s in steps])


@pytest.mark.parametrize("kind,want", [("constant", "warmup-stable"), ("linear", "wsd"), ("cosine", "cosine")])
def test_hugging_face_schedulers_are_recognised(kind, want):
    steps, lr = _hf(kind, 2000, 100)
    spec, peak, warmup = infer_schedule(steps, lr, max_steps=2000, source="trainer_state.json")
    assert spec["type"] == want and peak == pytest.approx(1e-3) and warmup == 100


def test_warmup_from_the_rising_rows_and_from_a_single_row():
    steps, lr = _hf("constant", 500, 50, every=10)
    assert warmup_length(steps, lr) == 50
    # one row inside the warmup: Hugging Face with warmup_steps=5 logs 0.8 x peak at step 5 (the LR of update 5)
    assert warmup_length(np.array([5, 10, 15]), np.array([0.8, 1.0, 1.0])) == 5
    assert warmup_length(np.array([100, 200]), np.array([1.0, 1.0])) == 0


def test_a_decay_without_the_run_length_or_an_odd_schedule_is_refused():
    steps, lr = _hf("cosine", 2000, 100)
    with pytest.raises(LogError, match=r"log.csv: .*follows none.*the run's length is unknown.*--schedule SPEC"):
        infer_schedule(steps, lr, max_steps=None, source="log.csv")
    with pytest.raises(LogError, match="every logged learning rate is 0"):
        infer_schedule(np.array([1, 2]), np.array([0.0, 0.0]), max_steps=None, source="log.csv")
