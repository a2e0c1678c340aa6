"""Golden values for every decay shape (computed by hand from the formulas in docs/schedules.md)."""

from __future__ import annotations

import pytest

from riverbed.errors import ConfigError
from riverbed.schedules import DECAY_SHAPES, WSD, decay_value

# WSD(warmup=0, stable=1, decay=4): steps 1..4 have progress 0.25, 0.5, 0.75, 1.
# Unit shapes with min_ratio 0: multiplier = f(p).
UNIT_GOLDEN = {
    "linear": [0.75, 0.5, 0.25, 0.0],
    "cosine": [0.8535533905932737, 0.5, 0.14644660940672624, 0.0],  # (1 + cos(pi p)) / 2
    "1-sqrt": [0.5, 0.2928932188134524, 0.1339745962155614, 0.0],  # 1 - sqrt(p)
    "square": [0.9375, 0.75, 0.4375, 0.0],  # 1 - p^2
    "mirror-cosine": [0.6464466094067263, 0.5, 0.3535533905932738, 0.0],  # 2(1 - p) - cosine
    "exp-megatron": [0.681792830507429, 0.41421356237309515, 0.18920711500272103, 0.0],  # 2 * 0.5^p - 1
}
# Shapes defined by their end points, min_ratio 0.1.
RATIO_GOLDEN = {
    "inverse-proportional": [1 / 3.25, 1 / 5.5, 1 / 7.75, 0.1],  # 1 / (p/0.1 + (1 - p)/1)
    "exp-epfml": [0.5623413251903491, 0.31622776601683794, 0.17782794100389226, 0.1],  # 0.1^p
    "step": [0.31622776601683794, 0.31622776601683794, 0.1, 0.1],  # 2 stages: sqrt(0.1), then 0.1
}
# MiniCPM half-life 2 steps, min 0: 0.5^(steps_into_decay / 2), steps_into_decay = 1..4.
MINICPM_GOLDEN = [0.7071067811865476, 0.5, 0.3535533905932738, 0.25]


def test_every_shape_has_a_golden_vector():
    assert set(UNIT_GOLDEN) | set(RATIO_GOLDEN) | {"exp-minicpm"} == set(DECAY_SHAPES)


@pytest.mark.parametrize("shape", list(UNIT_GOLDEN))
def test_unit_shapes(shape):
    s = WSD(warmup=0, stable=1, decay=4, shape=shape, min_ratio=0.0)
    assert s.values() == pytest.approx([1.0, *UNIT_GOLDEN[shape]], abs=1e-12)
    assert s.multiplier(5) == 0.0 and s.multiplier(10**6) == 0.0  # holds the min after the end


@pytest.mark.parametrize("shape", list(UNIT_GOLDEN))
def test_unit_shapes_map_onto_min_ratio(shape):
    s = WSD(warmup=0, stable=1, decay=4, shape=shape, min_ratio=0.1)
    assert s.values()[1:] == pytest.approx([0.1 + 0.9 * f for f in UNIT_GOLDEN[shape]], abs=1e-12)


@pytest.mark.parametrize("shape", list(RATIO_GOLDEN))
def test_ratio_shapes(shape):
    s = WSD(warmup=0, stable=1, decay=4, shape=shape, min_ratio=0.1)
    assert s.values() == pytest.approx([1.0, *RATIO_GOLDEN[shape]], abs=1e-12)


def test_minicpm_half_life_never_reaches_min():
    s = WSD(warmup=0, stable=1, decay=4, shape="exp-minicpm", min_ratio=0.0, half_life=2)
    assert s.values() == pytest.approx([1.0, *MINICPM_GOLDEN], abs=1e-12)


def test_step_shape_deepseek_stages():
    # DeepSeek LLM: 31.6 % after 80 % of training, 10 % after 90 %: decay = last 20 %, 2 stages.
    s = WSD(warmup=0, stable=80, decay=20, shape="step", min_ratio=0.1)
    assert s.multiplier(79) == 1.0
    assert [s.multiplier(k) for k in (80, 89)] == pytest.approx([0.1**0.5] * 2)
    assert [s.multiplier(k) for k in (90, 99)] == pytest.approx([0.1, 0.1])
    three = WSD(warmup=0, stable=0, decay=3, shape="step", min_ratio=0.125, stages=3)
    assert three.values() == pytest.approx([0.5, 0.25, 0.125])


def test_decay_value_endpoints():
    for shape in DECAY_SHAPES:
        kw = {"decay_steps": 10, "half_life": 1e-9} if shape == "exp-minicpm" else {}
        assert decay_value(shape, 0.0, lo=0.2, hi=0.8, **kw) == 0.8
        assert decay_value(shape, 1.0, lo=0.2, hi=0.8, **kw) == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"shape": "bogus"}, "wsd.shape"),
        ({"shape": "exp-epfml", "min_ratio": 0.0}, "wsd.min_ratio"),
        ({"shape": "inverse-proportional", "min_ratio": 0.0}, "wsd.min_ratio"),
        ({"shape": "exp-minicpm"}, "wsd.half_life"),
        ({"shape": "linear", "half_life": 5.0}, "wsd.half_life"),
        ({"shape": "linear", "stages": 3}, "wsd.stages"),
        ({"shape": "step", "min_ratio": 0.1, "stages": 0}, "wsd.stages"),
        ({"min_ratio": 1.5}, "wsd.min_ratio"),
        ({"min_ratio": -0.1}, "wsd.min_ratio"),
        ({"warmup_shape": "exp"}, "wsd.warmup_shape"),
    ],
)
def test_bad_shape_fields_name_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        WSD(warmup=0, stable=1, decay=4, **kwargs)
