"""Golden tests of the pure spike detector and the [guard] / [init] config sections."""

from __future__ import annotations

import math
import random

import pytest

from riverbed import config
from riverbed.errors import ConfigError
from riverbed.config.guard import GuardConfig
from riverbed.training.spike_detector import SpikeDetector
from riverbed.config.init import InitConfig


def _smooth_curve(n: int, seed: int = 0, noise: float = 0.03) -> list[float]:
    # A typical pre-training curve: fast initial drop, slow tail, small-batch noise.
    rng = random.Random(seed)
    return [1.8 + 3.5 * math.exp(-s / 150) + rng.gauss(0.0, noise) for s in range(n)]


@pytest.mark.parametrize("seed", range(5))
def test_no_false_positive_on_smoothly_decreasing_noisy_curve(seed):
    det = SpikeDetector(GuardConfig(window=50, min_history=10, detectors=("mad", "ratio")))
    for step, loss in enumerate(_smooth_curve(2000, seed)):
        v = det.update(step, loss, grad_norm=1.0 + 0.1 * random.Random(step).random())
        assert not v.anomalous, v.reason


def test_detects_3x_spike_with_onset():
    det = SpikeDetector(GuardConfig(window=50, min_history=10))
    curve = _smooth_curve(600)
    for step in range(500):
        assert not det.update(step, curve[step]).anomalous
    v = det.update(500, 3 * curve[500])
    assert v.spike and v.kind == "loss-mad" and v.onset == 500
    assert v.value == pytest.approx(3 * curve[500])
    assert v.threshold is not None and curve[500] < v.threshold < 3 * curve[500]
    assert "step 500" in v.reason


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_loss_is_a_spike_even_before_the_detector_arms(bad):
    det = SpikeDetector(GuardConfig(window=50, min_history=10, patience=5))
    v = det.update(0, bad)
    assert v.spike and v.kind == "nan-loss" and v.onset == 0
    ev = v.to_event()
    assert ev["event"] == "spike" and ev["value"] == repr(bad)  # JSON-safe


def test_non_finite_weights_and_grad_norm():
    det = SpikeDetector()
    assert det.update(3, 2.0, weights_finite=False).kind == "nan-weights"
    assert det.update(4, 2.0, grad_norm=float("nan")).spike


def test_golden_thresholds():
    # values 1..9: median 5, MAD = median(4,3,2,1,0,1,2,3,4) = 2
    det = SpikeDetector(GuardConfig(window=9, min_history=9, mad_k=3.0, mad_floor=0.0))
    for s, v in enumerate(range(1, 10)):
        det.update(s, float(v))
    assert det.loss_threshold() == (11.0, "loss-mad")
    assert not det.update(9, 11.0).anomalous
    # 11.0 joined the window: 2..9, 11 -> median 6, MAD = median(4,3,2,1,0,1,2,3,5) = 2 -> 12
    assert det.loss_threshold() == (12.0, "loss-mad")
    assert det.update(10, 12.01).kind == "loss-mad"

    ratio = SpikeDetector(GuardConfig(window=9, min_history=9, detectors=("ratio",), ratio=1.5))
    for s, v in enumerate(range(1, 10)):
        ratio.update(s, float(v))
    assert ratio.loss_threshold() == (7.5, "loss-ratio")
    # Both detectors: the lower threshold trips first.
    both = SpikeDetector(GuardConfig(window=9, min_history=9, detectors=("mad", "ratio"), mad_k=3.0,
                                     mad_floor=0.0, ratio=1.5))
    for s, v in enumerate(range(1, 10)):
        both.update(s, float(v))
    assert both.loss_threshold() == (7.5, "loss-ratio")


def test_mad_floor_guards_a_flat_window():
    det = SpikeDetector(GuardConfig(window=10, min_history=10, mad_floor=0.05))
    for s in range(10):
        det.update(s, 2.0)  # MAD = 0
    assert det.loss_threshold() == (pytest.approx(2.1), "loss-mad")
    assert not det.update(10, 2.05).anomalous


def test_anomalies_stay_out_of_the_window_and_patience():
    det = SpikeDetector(GuardConfig(window=20, min_history=5, patience=3))
    for s in range(20):
        det.update(s, 2.0 + 0.01 * (s % 3))
    t0 = det.loss_threshold()
    v1, v2 = det.update(20, 10.0), det.update(21, 10.0)
    assert v1.anomalous and not v1.spike and not v2.spike
    assert det.loss_threshold() == t0  # the spike did not raise its own threshold
    v3 = det.update(22, 10.0)
    assert v3.spike and v3.onset == 20 and "3 anomalous steps since 20" in v3.reason
    # a healthy step resets the run
    det2 = SpikeDetector(GuardConfig(window=20, min_history=5, patience=2))
    for s in range(20):
        det2.update(s, 2.0)
    assert not det2.update(20, 10.0).spike
    assert not det2.update(21, 2.0).anomalous
    assert not det2.update(22, 10.0).spike


def test_grad_norm_detector():
    det = SpikeDetector(GuardConfig(window=20, min_history=5, grad_norm_ratio=4.0))
    for s in range(10):
        det.update(s, 2.0, grad_norm=1.0)
    assert det.grad_norm_threshold() == 4.0
    v = det.update(10, 2.0, grad_norm=5.0)
    assert v.kind == "grad-norm" and v.value == 5.0 and v.threshold == 4.0
    off = SpikeDetector(GuardConfig(window=20, min_history=5))
    for s in range(10):
        off.update(s, 2.0, grad_norm=1.0)
    assert not off.update(10, 2.0, grad_norm=100.0).anomalous


def test_rewind_and_state_dict_round_trip():
    det = SpikeDetector(GuardConfig(window=50, min_history=3))
    for s in range(10):
        det.update(s, 3.0 - 0.1 * s)
    clone = SpikeDetector(det.config)
    clone.load_state_dict(det.state_dict())
    assert clone.loss_threshold() == det.loss_threshold()
    det.rewind(5)
    assert [s for s, _ in det.state_dict()["losses"]] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"ratio": 0.5}, "guard.ratio=0.5"),
        ({"mad_k": -1.0}, "guard.mad_k=-1.0"),
        ({"mad_k": float("nan")}, "guard.mad_k=nan"),
        ({"window": 5, "min_history": 10}, "guard.min_history=10"),
        ({"detectors": ()}, "guard.detectors=[]"),
        ({"detectors": ("zscore",)}, "guard.detectors=['zscore']"),
        ({"grad_norm_ratio": 0.9}, "guard.grad_norm_ratio=0.9"),
        ({"lr_scale": 2.0}, "guard.lr_scale=2.0"),
        ({"lr_scale": 0.0}, "guard.lr_scale=0.0"),
        ({"action": "retry"}, "guard.action='retry'"),
        ({"pma_count": 0}, "guard.pma_count=0"),
        ({"max_recoveries": -1}, "guard.max_recoveries=-1"),
        ({"alpha": 0.0}, "guard.alpha=0.0"),
    ],
)
def test_nonsensical_guard_config_names_key_and_value(kwargs, needle):
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        GuardConfig(**kwargs)


def test_guard_and_init_sections_load_from_toml():
    cfg = config.load_config_text(
        '[guard]\ndetectors = ["mad", "ratio"]\naction = "rollback"\npma_count = 4\n'
        '[init]\nfrom_merge = "runs/base"\nlast = 2\n')
    assert cfg.guard == GuardConfig(detectors=("mad", "ratio"), action="rollback", pma_count=4)
    assert cfg.init == InitConfig(from_merge="runs/base", last=2)
    with pytest.raises(ConfigError, match="guard.spike_k"):
        config.load_config_text("[guard]\nspike_k = 3\n")
    with pytest.raises(ConfigError, match="guard.ratio=1.0"):
        config.load_config_text("[guard]\nratio = 1\n")
