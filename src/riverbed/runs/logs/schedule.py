"""Which riverbed schedule a logged LR follows: the schedule an adopted run is recorded with.

The logged LRs are compared, after the warmup, with each candidate times the peak (the largest
logged LR): a warmup then constant LR (WSD's stable phase), and -- when the run's length is
known (a Trainer's ``max_steps``) -- a cosine and a linear decay over it (Hugging Face's
``cosine`` and ``linear`` schedulers). The warmup length comes from the rising start of the
log: a linear warmup from 0 reaches the peak at ``peak / slope`` steps. The first candidate
within ``TOLERANCE`` of the peak at every logged step is the answer; none is an error asking
for the schedule (``--schedule``), never a guess.

>>> import numpy as np
>>> steps = np.arange(0, 200, 10); lr = 1e-3 * np.minimum(1, steps / 50)
>>> infer_schedule(steps, lr, max_steps=None, source="log.csv")[0]["type"]
'warmup-stable'
"""

from __future__ import annotations

import numpy as np

from riverbed.errors import ConfigError, LogError
from riverbed.schedules import schedule_from_spec

#: Largest |logged - schedule| / peak accepted after the warmup (logs round the LR; 1 % is far
#: below any difference between the candidate shapes over a run).
TOLERANCE = 0.01


def warmup_length(steps: np.ndarray, lr: np.ndarray) -> int:
    """Steps of a linear warmup from 0 that the rising start of the log belongs to (0: none seen)."""
    peak = float(lr.max())
    k = 0
    while k + 1 < lr.size and lr[k + 1] > lr[k] * (1 + 1e-6):
        k += 1
    if k == 0:
        return 0 if lr[0] >= peak * (1 - TOLERANCE) else int(steps[0])
    if k == 1:  # one logged row inside the warmup: a linear warmup from 0 at step 0 through it
        return max(1, int(round(peak * float(steps[0]) / float(lr[0])))) if lr[0] > 0 else int(steps[1])
    # Rows 0..k-1 rise (inside the warmup); row k may already be past its end.
    slope = float(np.polyfit(steps[:k].astype(float), lr[:k], 1)[0])
    if slope <= 0:
        return int(steps[k])
    return max(1, int(round(peak / slope)))


def _off(sched: object, steps: np.ndarray, lr: np.ndarray, peak: float, shift: int) -> float:
    if not steps.size:
        return 0.0
    want = np.array([peak * sched.multiplier(max(0, int(s) - shift)) for s in steps])  # type: ignore[attr-defined]
    return float(np.max(np.abs(want - lr)) / peak)


def _candidates(warmup: int, max_steps: int | None) -> list[dict[str, object]]:
    out: list[dict[str, object]] = [{"type": "warmup-stable", "warmup": warmup} if warmup else {"type": "constant"}]
    if max_steps is not None and max_steps > warmup:
        out.append({"type": "cosine", "steps": max_steps, "warmup": warmup, "min_ratio": 0.0})
        out.append({"type": "wsd", "warmup": warmup, "stable": 0, "decay": max_steps - warmup, "shape": "linear",
                    "min_ratio": 0.0})
    return out


def infer_schedule(steps: np.ndarray, lr: np.ndarray, *, max_steps: int | None, source: str) -> tuple[dict[str, object], float, int]:
    """(schedule spec, peak LR, warmup steps) of the logged LR; LogError naming ``source`` when no
    candidate matches it."""
    if lr.size == 0:
        raise LogError(f"{source}: the learning-rate column holds no values")
    peak = float(lr.max())
    if not peak > 0:
        raise LogError(f"{source}: every logged learning rate is 0")
    warmup = warmup_length(steps, lr)
    after = steps >= warmup
    tried = []
    for spec in _candidates(warmup, max_steps):
        try:
            sched = schedule_from_spec(dict(spec), where="schedule")
        except ConfigError:
            continue
        # Trainers differ by one update in which LR a logged step shows (the one just used or
        # the next one; Hugging Face logs the next): both readings are accepted.
        err = min(_off(sched, steps[after], lr[after], peak, shift) for shift in (0, 1))
        tried.append(f"{spec['type']} ({100 * err:.1f} % off)")
        if err <= TOLERANCE:
            return spec, peak, warmup
    length = "" if max_steps is not None else " (the run's length is unknown, so no decaying schedule was tried)"
    raise LogError(f"{source}: the logged learning rate follows none of the schedules tried, with a {warmup}-step "
                   f"warmup to {peak:.4g}: {', '.join(tried)}{length}; give the schedule with --schedule SPEC")
