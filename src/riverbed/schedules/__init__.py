"""riverbed.schedules: learning-rate schedules as pure functions of the step.

Every schedule is a frozen value object with ``multiplier(step)`` (0-based optimizer step;
the factor multiplies the peak LR for that step's update) and ``total_steps`` (None for an
indefinite main branch). Specs (``schedule_to_spec``/``schedule_from_spec``) are plain
dicts for configs, manifests and checkpoints. The torch adapter lives in
``riverbed.schedules.torch`` and the multi-budget planner in ``riverbed.schedules.budget_plan``
(imported on demand: this package does not import torch).

>>> from riverbed.schedules import WSD
>>> WSD(warmup=10, stable=70, decay=20, shape="linear", min_ratio=0.1).multiplier(89)
0.55
"""

from __future__ import annotations

from riverbed.schedules.check import ScheduleReport, check_schedule
from riverbed.schedules.core import (
    Constant,
    Phase,
    Piecewise,
    Schedule,
    Segment,
    Tabulated,
    Warmup,
    WarmupStable,
    steps_to_tokens,
    tokens_to_steps,
)
from riverbed.schedules.presets import PRESETS, hf_wsd, olmo_core_wsd, olmo_core_wsds, preset, torchtitan_wsd
from riverbed.schedules.shapes import DECAY_SHAPES, WARMUP_SHAPES, decay_value
from riverbed.schedules.spec import TYPES, schedule_fingerprint, schedule_from_spec, schedule_to_spec, spec_from_text
from riverbed.schedules.wsd import WSD, WSDS, Cosine, CyclicCosine, DecayBranch

__all__ = [
    "DECAY_SHAPES",
    "PRESETS",
    "TYPES",
    "WARMUP_SHAPES",
    "WSD",
    "WSDS",
    "Constant",
    "Cosine",
    "CyclicCosine",
    "DecayBranch",
    "Phase",
    "Piecewise",
    "Schedule",
    "ScheduleReport",
    "Segment",
    "Tabulated",
    "Warmup",
    "WarmupStable",
    "check_schedule",
    "decay_value",
    "hf_wsd",
    "olmo_core_wsd",
    "olmo_core_wsds",
    "preset",
    "schedule_fingerprint",
    "schedule_from_spec",
    "schedule_to_spec",
    "spec_from_text",
    "steps_to_tokens",
    "tokens_to_steps",
    "torchtitan_wsd",
]
