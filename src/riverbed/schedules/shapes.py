"""Decay and warmup shapes: pure functions of the progress ``p`` in [0, 1].

Every decay shape answers one question: the multiplier at progress ``p`` of a decay that
starts at level ``hi`` (the LR before the decay, 1.0 for a WSD) and ends at level ``lo``
(the min-LR ratio). Most shapes are *unit* shapes ``f(p)`` going from 1 to 0, mapped as
``lo + (hi - lo) * f(p)``; a few are defined by the end points themselves (geometric or
harmonic interpolation) and need ``lo > 0``. Formulas and sources: background section 1.

The registries below are literal on purpose: one place lists every shape.

>>> round(decay_value("1-sqrt", 0.25, lo=0.1, hi=1.0), 6)
0.55
"""

from __future__ import annotations

import math
from collections.abc import Callable

from riverbed.errors import ConfigError

# --- unit decay shapes f(p): f(0) = 1, f(1) = 0 ---------------------------------------


def linear(p: float) -> float:
    return 1.0 - p


def cosine(p: float) -> float:
    # Written exactly as transformers / torchtitan do, so their presets match bit for bit.
    return 0.5 * (1.0 + math.cos(math.pi * p))


def one_minus_sqrt(p: float) -> float:
    # Hägele et al. 2024: beats linear; the cooldown benefit saturates near 20 % of steps.
    return 1.0 - math.sqrt(p)


def square(p: float) -> float:
    return 1.0 - p * p


def mirror_cosine(p: float) -> float:
    # epfml/schedules-and-scaling: linear reflected through the cosine, 2(1 - p) - cos-shape.
    return 2.0 * (1.0 - p) - 0.5 * (1.0 + math.cos(math.pi * p))


def exp_megatron(p: float) -> float:
    # Megatron-Core WSD "exponential": 2 * 0.5**p - 1, mapped onto [lo, hi].
    return 2.0 * 0.5**p - 1.0


UNIT_SHAPES: dict[str, Callable[[float], float]] = {
    "linear": linear,
    "cosine": cosine,
    "1-sqrt": one_minus_sqrt,
    "square": square,
    "mirror-cosine": mirror_cosine,
    "exp-megatron": exp_megatron,
}

# Shapes defined by their end points (or a parameter) rather than by a unit f(p).
# inverse-proportional: 1/lr interpolates linearly (WSD-S paper's proposed decay).
# exp-epfml: geometric, hi * (lo/hi)**p (epfml cooldown "exp").
# exp-minicpm: MiniCPM half-life, 0.5**(steps_into_decay / half_life); never reaches lo.
# step: DeepSeek multi-step; `stages` equal stages, geometric levels ending exactly at lo
#       (2 stages, lo = 0.1: 31.6 % then 10 %, DeepSeek LLM's 80 % / 90 % drops).
OTHER_SHAPES: tuple[str, ...] = ("inverse-proportional", "exp-epfml", "exp-minicpm", "step")

DECAY_SHAPES: tuple[str, ...] = tuple(UNIT_SHAPES) + OTHER_SHAPES

# Shapes that divide by lo (or take its logarithm): a min ratio of 0 is meaningless there.
NEEDS_POSITIVE_MIN: frozenset[str] = frozenset({"inverse-proportional", "exp-epfml", "step"})

# --- warmup shapes g(p): g(0) = 0, g(1) = 1 (transformers' three warmup types) -----------
WARMUP_SHAPES: dict[str, Callable[[float], float]] = {
    "linear": lambda p: p,
    "cosine": lambda p: 0.5 * (1.0 - math.cos(math.pi * p)),
    "1-sqrt": lambda p: 1.0 - math.sqrt(1.0 - p),
}


def decay_value(
    shape: str,
    p: float,
    *,
    lo: float,
    hi: float = 1.0,
    decay_steps: int | None = None,
    half_life: float | None = None,
    stages: int = 2,
) -> float:
    """Multiplier at decay progress ``p`` for a decay from ``hi`` to ``lo``.

    ``decay_steps`` and ``half_life`` (both in steps) are used by ``exp-minicpm`` only;
    ``stages`` by ``step`` only.

    >>> decay_value("linear", 0.5, lo=0.0)
    0.5
    """
    if p <= 0.0:
        return hi
    p = min(p, 1.0)
    unit = UNIT_SHAPES.get(shape)
    if unit is not None:
        return lo + (hi - lo) * unit(p)
    if shape == "inverse-proportional":
        return 1.0 / (p / lo + (1.0 - p) / hi)
    if shape == "exp-epfml":
        return hi * (lo / hi) ** p
    if shape == "exp-minicpm":
        assert decay_steps is not None and half_life is not None
        return lo + (hi - lo) * 0.5 ** (p * decay_steps / half_life)
    if shape == "step":
        # Stage k (1..stages) covers progress ((k-1)/stages, k/stages]; the small epsilon keeps
        # p = k/stages (computed as (j+1)/D) in stage k despite rounding.
        k = max(1, math.ceil(p * stages - 1e-9))
        return hi * (lo / hi) ** (k / stages)
    raise ConfigError(f"shape: unknown decay shape {shape!r}; choose one of {', '.join(DECAY_SHAPES)}")


def validate_shape(owner: str, shape: object, min_ratio: float, half_life: float | None, stages: int) -> None:
    """Raise ConfigError naming the field when a shape (or its parameter) is unusable."""
    if shape not in DECAY_SHAPES:
        raise ConfigError(f"{owner}.shape: unknown decay shape {shape!r}; choose one of {', '.join(DECAY_SHAPES)}")
    if shape in NEEDS_POSITIVE_MIN and min_ratio <= 0.0:
        raise ConfigError(f"{owner}.min_ratio: shape {shape!r} needs min_ratio > 0, got {min_ratio!r}")
    if shape == "exp-minicpm":
        if half_life is None or isinstance(half_life, bool) or not isinstance(half_life, (int, float)) or half_life <= 0:
            raise ConfigError(f"{owner}.half_life: shape 'exp-minicpm' needs half_life > 0 (steps), got {half_life!r}")
    elif half_life is not None:
        raise ConfigError(f"{owner}.half_life: only used by shape 'exp-minicpm', got {half_life!r} with shape {shape!r}")
    if isinstance(stages, bool) or not isinstance(stages, int) or stages < 1:
        raise ConfigError(f"{owner}.stages: must be an integer >= 1, got {stages!r}")
    if stages != 2 and shape != "step":
        raise ConfigError(f"{owner}.stages: only used by shape 'step', got {stages!r} with shape {shape!r}")


def validate_warmup_shape(owner: str, shape: object) -> None:
    if shape not in WARMUP_SHAPES:
        raise ConfigError(f"{owner}.warmup_shape: unknown warmup shape {shape!r}; choose one of {', '.join(WARMUP_SHAPES)}")
