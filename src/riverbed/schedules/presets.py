"""Presets that reproduce other frameworks' WSD schedules exactly, as riverbed schedules.

Each framework has its own step convention; each preset maps it onto riverbed's (0-based
step = the update it applies to; see docs/schedules.md) and returns an ordinary riverbed
schedule, so the mapping itself is the documentation:

* ``hf`` -- transformers ``get_wsd_schedule`` is riverbed's WSD *delayed by one step*: its
  step 0 is spent at the warmup start (min_lr_ratio), its warmup progress is s / W, and its
  decay reaches the minimum only at step ``num_training_steps``, one step after the run.
* ``torchtitan`` -- riverbed's WSD with one extra stable step ("a virtual last step so the LR
  never hits 0"), truncated to ``steps``: the last executed step is one decay step short of
  the minimum.
* ``olmo-core`` -- OLMo-core feeds its scheduler the step counter *after* incrementing it
  (the first update sees 1) and reaches the minimum on the last step: that is riverbed's
  convention exactly, so its WSD and WSDS map one to one.

>>> hf_wsd(num_warmup_steps=10, num_decay_steps=20, num_training_steps=100,
...        decay_type="linear", min_lr_ratio=0.1).multiplier(0)
0.1
"""

from __future__ import annotations

from riverbed.errors import ConfigError
from riverbed.schedules.core import Constant, Piecewise, Schedule, Segment, check_int, check_ratio
from riverbed.schedules.wsd import WSD, WSDS


def hf_wsd(
    num_warmup_steps: int,
    num_decay_steps: int,
    num_training_steps: int | None = None,
    num_stable_steps: int | None = None,
    warmup_type: str = "linear",
    decay_type: str = "cosine",
    min_lr_ratio: float = 0.0,
    num_cycles: float = 0.5,
) -> Schedule:
    """transformers ``get_wsd_schedule`` (same arguments and defaults), step for step."""
    check_int("hf", "num_warmup_steps", num_warmup_steps)
    check_int("hf", "num_decay_steps", num_decay_steps, minimum=1)
    check_ratio("hf", "min_lr_ratio", min_lr_ratio)
    if num_cycles != 0.5:
        raise ConfigError(f"hf.num_cycles: only 0.5 (a half cosine) is a decay, got {num_cycles!r}")
    if warmup_type not in ("linear", "cosine", "1-sqrt"):
        raise ConfigError(f"hf.warmup_type: must be linear, cosine or 1-sqrt, got {warmup_type!r}")
    if decay_type not in ("linear", "cosine", "1-sqrt"):
        raise ConfigError(f"hf.decay_type: must be linear, cosine or 1-sqrt, got {decay_type!r}")
    if num_stable_steps is None:
        if num_training_steps is None:
            raise ConfigError("hf.num_training_steps: give num_training_steps or num_stable_steps, got neither")
        num_stable_steps = num_training_steps - num_warmup_steps - num_decay_steps
        if num_stable_steps < 0:
            raise ConfigError(
                f"hf.num_decay_steps: warmup ({num_warmup_steps}) + decay ({num_decay_steps}) is longer than the schedule "
                f"(num_training_steps={num_training_steps})"
            )
    check_int("hf", "num_stable_steps", num_stable_steps)
    total = num_warmup_steps + num_stable_steps + num_decay_steps
    inner = WSD(
        warmup=num_warmup_steps,
        stable=num_stable_steps,
        decay=num_decay_steps,
        shape=decay_type,
        min_ratio=float(min_lr_ratio),
        warmup_start=float(min_lr_ratio),
        warmup_shape=warmup_type,
    )
    # HF's step 0 is the warmup start (or the peak when there is no warmup).
    first = float(min_lr_ratio) if num_warmup_steps else 1.0
    if total == 1:
        return Piecewise((Segment(Constant(first), 1), Segment(inner)))
    return Piecewise((Segment(Constant(first), 1), Segment(inner, total - 1)))


def torchtitan_wsd(
    steps: int,
    warmup_steps: int,
    decay_ratio: float | None = None,
    decay_type: str = "linear",
    min_lr_factor: float = 0.0,
) -> Schedule:
    """torchtitan ``linear_warmup_stable_decay`` (``[lr_scheduler]`` config), step for step.

    ``decay_ratio`` None decays over all steps after the warmup, as torchtitan does;
    ``decay_type`` is linear, sqrt (= riverbed's 1-sqrt) or cosine.
    """
    check_int("torchtitan", "steps", steps, minimum=1)
    check_int("torchtitan", "warmup_steps", warmup_steps)
    check_ratio("torchtitan", "min_lr_factor", min_lr_factor)
    shapes = {"linear": "linear", "sqrt": "1-sqrt", "cosine": "cosine"}
    if decay_type not in shapes:
        raise ConfigError(f"torchtitan.decay_type: must be linear, sqrt or cosine, got {decay_type!r}")
    # torchtitan clips the warmup to the run and the decay to what the warmup leaves.
    warmup_steps = min(warmup_steps, steps)
    if decay_ratio is not None:
        check_ratio("torchtitan", "decay_ratio", decay_ratio)
        decay_steps = min(round(steps * decay_ratio), steps - warmup_steps)
    else:
        decay_steps = steps - warmup_steps
    if decay_steps < 1:
        raise ConfigError(
            f"torchtitan.decay_ratio: leaves no decay step (steps={steps}, warmup_steps={warmup_steps}, "
            f"decay_ratio={decay_ratio!r})"
        )
    # The virtual last step: one more stable step, so step `steps - 1` stops short of the min.
    inner = WSD(
        warmup=warmup_steps,
        stable=steps + 1 - warmup_steps - decay_steps,
        decay=decay_steps,
        shape=shapes[decay_type],
        min_ratio=float(min_lr_factor),
    )
    return Piecewise((Segment(inner, steps),))


def _resolve(owner: str, steps: int | None, fraction: float | None, length: int, name: str) -> int:
    if (steps is None) == (fraction is None):
        raise ConfigError(f"{owner}.{name}: give exactly one of {name} or {name}_fraction, got {steps!r} and {fraction!r}")
    if steps is not None:
        check_int(owner, name, steps)
        return steps
    check_ratio(owner, f"{name}_fraction", fraction)
    return int(round(fraction * length))  # type: ignore[operator]


def olmo_core_wsd(
    t_max: int,
    warmup_steps: int | None = None,
    warmup_fraction: float | None = None,
    decay_steps: int | None = None,
    decay_fraction: float | None = None,
    warmup_min_lr: float = 0.0,
    decay_min_lr: float = 0.0,
    lr: float = 1.0,
) -> WSD:
    """OLMo-core ``WSD`` (linear warmup and decay); ``lr`` converts its absolute min LRs to ratios."""
    check_int("olmo-core", "t_max", t_max, minimum=1)
    warmup = _resolve("olmo-core", warmup_steps, warmup_fraction, t_max, "warmup_steps" if warmup_steps is not None else "warmup")
    decay = _resolve("olmo-core", decay_steps, decay_fraction, t_max, "decay_steps" if decay_steps is not None else "decay")
    if lr <= 0:
        raise ConfigError(f"olmo-core.lr: must be > 0, got {lr!r}")
    return WSD.from_total(
        t_max, warmup, decay, shape="linear", min_ratio=decay_min_lr / lr, warmup_start=warmup_min_lr / lr
    )


def olmo_core_wsds(
    period_lengths: list[int],
    warmup: int | None = None,
    warmup_fraction: float | None = None,
    decay: int | None = None,
    decay_fraction: float | None = None,
    warmup_min_lr: float = 0.0,
    decay_min_lr: float = 0.0,
    lr: float = 1.0,
) -> WSDS:
    """OLMo-core ``WSDS``: periods (not cumulative), warmup inside period 0, decay per period.

    ``decay_fraction`` is a fraction of each *period* length, as in OLMo-core.
    """
    if not period_lengths:
        raise ConfigError("olmo-core.period_lengths: must be non-empty, got []")
    for i, p in enumerate(period_lengths):
        check_int("olmo-core", f"period_lengths[{i}]", p, minimum=1)
    w = _resolve("olmo-core", warmup, warmup_fraction, period_lengths[0], "warmup")
    decays = tuple(_resolve("olmo-core", decay, decay_fraction, p, "decay") for p in period_lengths)
    budgets, acc = [], 0
    for p in period_lengths:
        acc += p
        budgets.append(acc)
    if lr <= 0:
        raise ConfigError(f"olmo-core.lr: must be > 0, got {lr!r}")
    return WSDS(
        budgets=tuple(budgets), warmup=w, decays=decays, shape="linear",
        min_ratio=decay_min_lr / lr, warmup_start=warmup_min_lr / lr,
    )


# Literal registry: preset name -> builder taking the framework's own argument names.
PRESETS = {
    "hf": hf_wsd,
    "torchtitan": torchtitan_wsd,
    "olmo-core": olmo_core_wsd,
    "olmo-core-wsds": olmo_core_wsds,
}


def preset(name: str, **kwargs: object) -> Schedule:
    """Build a preset by name with the framework's own argument names.

    >>> preset("olmo-core", t_max=100, warmup_steps=10, decay_steps=20).total_steps
    100
    """
    if name not in PRESETS:
        raise ConfigError(f"preset: unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    try:
        return PRESETS[name](**kwargs)  # type: ignore[operator]
    except TypeError as exc:
        raise ConfigError(f"preset {name!r}: {exc}") from None
