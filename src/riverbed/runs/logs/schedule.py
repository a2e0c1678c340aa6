"""Which riverbed schedule a logged LR follows: the schedule an adopted run is recorded with.

Candidates: a linear warmup then a constant LR (WSD's stable phase) and -- when the run's length
is known (a Trainer's ``max_steps``) -- a cosine and a linear decay over it (Hugging Face's
``cosine`` and ``linear`` schedulers). Each is fitted to the logged rows: its peak LR by least
squares, its warmup length from the rising start of the log (the slope of a linear warmup from
0 when two or more rows rise, else searched over the steps before the first row that does not
rise), and an offset of up to two updates between a logged step and the update whose LR it shows
(trainers differ). The best candidate within ``TOLERANCE`` of its peak at every row is the
answer; none is an error asking for the schedule (``--schedule``), never a guess.

>>> import numpy as np
>>> steps = np.arange(0, 200, 10); lr = 1e-3 * np.minimum(1, steps / 50)
>>> spec, peak, warmup = infer_schedule(steps, lr, max_steps=None, source="log.csv")
>>> spec["type"], round(peak, 6), warmup
('warmup-stable', 0.001, 50)
"""

from __future__ import annotations

import math

import numpy as np

from riverbed.errors import ConfigError, LogError
from riverbed.schedules import schedule_from_spec

#: Largest |logged - schedule| / peak accepted after the warmup (logs round the LR; 1 % is far
#: below any difference between the candidate shapes over a run).
TOLERANCE = 0.01


#: At most this many rows (evenly spaced, the last always) and warmup lengths are tried.
MAX_ROWS, MAX_WARMUPS = 200, 200
SHIFTS = (0, 1, 2)


def _rising(lr: np.ndarray) -> int:
    k = 0
    while k + 1 < lr.size and lr[k + 1] > lr[k] * (1 + 1e-6):
        k += 1
    return k


def warmup_candidates(steps: np.ndarray, lr: np.ndarray) -> list[int]:
    """Warmup lengths worth trying: around ``peak / slope`` when two or more rows rise (a linear
    warmup from 0), else every length up to the first row that does not rise."""
    k = _rising(lr)
    if k >= 2:  # rows 0..k-1 rise (inside the warmup); row k may already be past its end
        slope = float(np.polyfit(steps[:k].astype(float), lr[:k], 1)[0])
        if slope > 0:
            w = int(round(float(lr.max()) / slope))
            return sorted({max(0, w + d) for d in (-2, -1, 0, 1, 2)})
    top = int(steps[k]) + 1
    if top <= MAX_WARMUPS:
        return list(range(top + 1))
    return sorted({int(v) for v in np.linspace(0, top, MAX_WARMUPS)})


def warmup_length(steps: np.ndarray, lr: np.ndarray) -> int:
    """The warmup of the best-fitting warmup-then-constant schedule (0: none)."""
    best = min(((_fit({"type": "warmup-stable", "warmup": w} if w else {"type": "constant"}, steps, lr), w)
                for w in warmup_candidates(steps, lr)), key=lambda t: t[0][0])
    return best[1]


def _fit(spec: dict[str, object], steps: np.ndarray, lr: np.ndarray) -> tuple[float, float]:
    """(max relative error, peak) of ``spec`` fitted to the rows, over the update offsets."""
    try:
        sched = schedule_from_spec(dict(spec), where="schedule")
    except ConfigError:
        return math.inf, 0.0
    best = (math.inf, 0.0)
    for shift in SHIFTS:
        keep = steps >= shift  # a row before the first update of this reading says nothing
        m = np.array([sched.multiplier(int(s) - shift) for s in steps[keep]])
        mm = float(m @ m)
        if mm <= 0:
            continue
        peak = float(m @ lr[keep]) / mm
        if peak > 0:
            best = min(best, (float(np.max(np.abs(peak * m - lr[keep]))) / peak, peak))
    return best


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
    if not float(lr.max()) > 0:
        raise LogError(f"{source}: every logged learning rate is 0")
    rows = np.unique(np.linspace(0, lr.size - 1, min(lr.size, MAX_ROWS)).round().astype(int))
    s, v = steps[rows], lr[rows]
    best: dict[str, tuple[float, float, int, dict[str, object]]] = {}
    for w in warmup_candidates(steps, lr):
        for spec in _candidates(w, max_steps):
            err, peak = _fit(spec, s, v)
            name = str(spec["type"]).replace("constant", "warmup-stable")
            if name not in best or err < best[name][0]:
                best[name] = (err, peak, w, spec)
    err, peak, warmup, spec = min(best.values(), key=lambda t: t[0])
    if err <= TOLERANCE:
        return spec, peak, warmup
    tried = ", ".join(f"{n} ({100 * b[0]:.1f} % off)" for n, b in best.items())
    length = "" if max_steps is not None else " (the run's length is unknown, so no decaying schedule was tried)"
    raise LogError(f"{source}: the logged learning rate follows none of the schedules tried: {tried}{length}; "
                   "give the schedule with --schedule SPEC")
