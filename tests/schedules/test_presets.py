"""Framework presets reproduce their frameworks exactly.

Reference vectors copied from the riverbed background notes (section 1), which list each
framework's own values for eta=1, W=10, S=70, D=20, r=0.1 (transformers ``get_wsd_schedule``
and torchtitan ``linear_warmup_stable_decay``), torchtitan's unit-test vector
(tests/unit_tests/test_lr_scheduler.py: T=10, W=2, decay over the rest, min 0) and OLMo-core's
WSDS unit vectors (src/test/optim/scheduler_test.py). OLMo-core's step counter c is riverbed's
step + 1 (the first update sees c = 1).
"""

from __future__ import annotations

import pytest

from riverbed.errors import ConfigError
from riverbed.schedules import WSD, check_schedule, hf_wsd, olmo_core_wsd, olmo_core_wsds, preset, torchtitan_wsd

# step -> value, per column of the background table.
TABLE_STEPS = [0, 1, 81, 90, 99]
HF = {
    "linear": [0.100, 0.190, 0.955, 0.550, 0.145],
    "cosine": [0.100, 0.190, 0.99446, 0.550, 0.10554],
    "1-sqrt": [0.100, 0.190, 0.798754, 0.363604, 0.122789],
}
TORCHTITAN = {
    "linear": [0.100, 0.200, 0.955, 0.550, 0.145],
    "sqrt": [0.100, 0.200, 0.798754, 0.363604, 0.122789],
}


@pytest.mark.parametrize("decay_type", list(HF))
def test_hf_reference_table(decay_type):
    s = hf_wsd(num_warmup_steps=10, num_decay_steps=20, num_training_steps=100, decay_type=decay_type, min_lr_ratio=0.1)
    assert s.total_steps == 100
    assert [s.multiplier(k) for k in TABLE_STEPS] == pytest.approx(HF[decay_type], abs=5e-6)
    # transformers reaches the min one step after the run: step 100 (not executed).
    assert s.multiplier(100) == pytest.approx(0.1, abs=1e-15)


@pytest.mark.parametrize("decay_type", list(TORCHTITAN))
def test_torchtitan_reference_table(decay_type):
    s = torchtitan_wsd(steps=100, warmup_steps=10, decay_ratio=0.2, decay_type=decay_type, min_lr_factor=0.1)
    assert s.total_steps == 100
    assert [s.multiplier(k) for k in TABLE_STEPS] == pytest.approx(TORCHTITAN[decay_type], abs=5e-6)


def test_torchtitan_unit_test_vector():
    s = torchtitan_wsd(steps=10, warmup_steps=2)
    assert s.values() == pytest.approx([0.5, 1, 1, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8], abs=1e-15)


def test_olmo_core_wsds_unit_vectors():
    s = olmo_core_wsds([1000, 1000], warmup=100, decay=200)
    olmo = {100: 1.0, 799: 1.0, 900: 0.5, 1000: 0.0, 1001: 1.0, 2000: 0.0}  # c -> lr
    assert {c: s.multiplier(c - 1) for c in olmo} == pytest.approx(olmo, abs=1e-15)
    assert s.multiplier(0) == pytest.approx(0.01)  # c = 1: warmup 1/100
    assert s.budgets == (1000, 2000) and s.decays == (200, 200)


def test_olmo_core_wsds_decay_fraction_of_period():
    s = olmo_core_wsds([1000, 3000], warmup=100, decay_fraction=0.1)
    assert s.decays == (100, 300)


def test_olmo_core_wsd_is_riverbed_convention():
    # OLMo-core: warmup c/W; decay d0 + (1 - d0) * (t_max - c) / D for c >= t_max - D.
    s = olmo_core_wsd(t_max=100, warmup_steps=10, decay_steps=20, decay_min_lr=0.1)
    assert s == WSD(warmup=10, stable=70, decay=20, shape="linear", min_ratio=0.1)
    expect = {1: 0.1, 2: 0.2, 10: 1.0, 80: 1.0, 82: 0.1 + 0.9 * 18 / 20, 91: 0.1 + 0.9 * 9 / 20, 100: 0.1}
    assert {c: s.multiplier(c - 1) for c in expect} == pytest.approx(expect, abs=1e-15)
    frac = olmo_core_wsd(t_max=200, warmup_fraction=0.05, decay_fraction=0.1, warmup_min_lr=0.5, lr=2.0)
    assert (frac.warmup, frac.decay, frac.warmup_start) == (10, 20, 0.25)


def test_min_reached_only_in_riverbed_and_olmo():
    kw = {"shape": "linear", "min_ratio": 0.1}
    assert check_schedule(WSD(10, 70, 20, **kw)).min_reached is True
    assert check_schedule(hf_wsd(10, 20, 100, decay_type="linear", min_lr_ratio=0.1)).min_reached is False
    assert check_schedule(torchtitan_wsd(100, 10, decay_ratio=0.2, min_lr_factor=0.1)).min_reached is False


def test_preset_by_name_and_errors():
    assert preset("torchtitan", steps=10, warmup_steps=2).values()[0] == 0.5
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        preset("nope")
    with pytest.raises(ConfigError, match="hf.num_training_steps"):
        hf_wsd(10, 20)
    with pytest.raises(ConfigError, match="hf.decay_type"):
        hf_wsd(10, 20, 100, decay_type="square")
    with pytest.raises(ConfigError, match="torchtitan.decay_type"):
        torchtitan_wsd(10, 2, decay_type="1-sqrt")
    with pytest.raises(ConfigError, match="olmo-core.decay"):
        olmo_core_wsd(t_max=100, warmup_steps=10)
    with pytest.raises(ConfigError, match="preset 'hf'"):
        preset("hf", bogus=1)


@pytest.mark.parametrize("decay_type", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize("warmup_type", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize(("w", "s", "d", "r"), [(10, 70, 20, 0.1), (0, 5, 7, 0.0), (3, 0, 4, 0.25)])
def test_hf_matches_transformers_every_step(decay_type, warmup_type, w, s, d, r):
    # Only this test needs transformers; the reference vectors above stand without it.
    transformers = pytest.importorskip("transformers", reason="transformers not installed")
    import torch

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ref = transformers.get_wsd_schedule(
        opt, w, d, num_stable_steps=s, warmup_type=warmup_type, decay_type=decay_type, min_lr_ratio=r
    ).lr_lambdas[0]
    ours = hf_wsd(w, d, num_stable_steps=s, warmup_type=warmup_type, decay_type=decay_type, min_lr_ratio=r)
    n = w + s + d + 5
    assert [ours.multiplier(k) for k in range(n)] == [ref(k) for k in range(n)]  # bit for bit
