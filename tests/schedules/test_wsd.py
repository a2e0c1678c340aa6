"""Golden per-step vectors for the schedule types (hand-computed) and their validation."""

from __future__ import annotations

import pytest

from riverbed.errors import ConfigError
from riverbed.schedules import (
    WSD,
    WSDS,
    Constant,
    Cosine,
    CyclicCosine,
    DecayBranch,
    Phase,
    Piecewise,
    Segment,
    Warmup,
    WarmupStable,
    steps_to_tokens,
    tokens_to_steps,
)

COS = [0.8535533905932737, 0.5, 0.14644660940672624, 0.0]  # half cosine at p = 1/4 .. 1


def test_wsd_convention_boundaries():
    # Background reference setting: W=10, S=70, D=20, r=0.1, riverbed's own convention.
    s = WSD(warmup=10, stable=70, decay=20, shape="linear", min_ratio=0.1)
    assert s.total_steps == 100
    assert s.multiplier(0) == pytest.approx(0.1)  # first update: 1/W, never a zero-LR step
    assert s.multiplier(1) == pytest.approx(0.2)
    assert s.multiplier(9) == 1.0  # the last warmup step is at the peak
    assert s.multiplier(79) == 1.0
    assert s.multiplier(80) == pytest.approx(0.1 + 0.9 * 0.95)  # first decay step already decays
    assert s.multiplier(81) == pytest.approx(0.91)
    assert s.multiplier(90) == pytest.approx(0.505)
    assert s.multiplier(99) == pytest.approx(0.1, abs=1e-15)  # last executed step at the min
    assert s.multiplier(100) == pytest.approx(0.1, abs=1e-15)
    assert s.phases() == (Phase("warmup", 0, 10), Phase("stable", 10, 80), Phase("decay", 80, 100))


def test_warmup_start_and_shapes():
    assert WSD(4, 0, 1, shape="linear").values() == [0.25, 0.5, 0.75, 1.0, 0.0]
    assert WSD(4, 0, 1, shape="linear", warmup_start=0.2).values()[:4] == pytest.approx([0.4, 0.6, 0.8, 1.0])
    # cosine warmup (1 - cos(pi p)) / 2 at p = 1/4, 1/2, 3/4
    assert WSD(4, 0, 1, warmup_shape="cosine").values()[:3] == pytest.approx([0.14644660940672624, 0.5, 0.8535533905932737])
    assert Warmup(steps=2).values() == [0.5, 1.0]
    assert Warmup(steps=2).multiplier(50) == 1.0


def test_wsd_from_total():
    assert WSD.from_total(100, 10, 20, shape="linear") == WSD(10, 70, 20, shape="linear")
    with pytest.raises(ConfigError, match=r"wsd.decay.*longer than the schedule"):
        WSD.from_total(25, 10, 20)


def test_cosine_golden():
    s = Cosine(steps=5, warmup=1, min_ratio=0.1)
    assert s.values() == pytest.approx([1.0] + [0.1 + 0.9 * c for c in COS])
    assert s.multiplier(7) == pytest.approx(0.1)


def test_constant_and_warmup_stable():
    assert Constant(0.5).multiplier(10**9) == 0.5
    assert Constant().total_steps is None
    main = WarmupStable(warmup=4)
    assert main.total_steps is None
    assert [main.multiplier(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert main.phases() == (Phase("warmup", 0, 4), Phase("stable", 4, None))


@pytest.mark.parametrize("shape", ["linear", "cosine", "1-sqrt", "exp-epfml", "step", "inverse-proportional"])
def test_decay_branch_of_main_equals_wsd(shape):
    main = WarmupStable(warmup=10)
    branch = DecayBranch(main, fork_step=80, decay_steps=20, shape=shape, min_ratio=0.1)
    wsd = WSD(warmup=10, stable=70, decay=20, shape=shape, min_ratio=0.1)
    assert branch.values(110) == wsd.values(110)
    assert branch.total_steps == 100
    assert branch.phases() == wsd.phases()


def test_decay_branch_starts_from_main_level():
    # Forked during the warmup: decays from main(2) = 0.75, whatever it was.
    b = DecayBranch(WarmupStable(warmup=4), fork_step=2, decay_steps=2, shape="linear", min_ratio=0.0)
    assert b.start_level == 0.75
    assert b.values() == [0.25, 0.5, 0.375, 0.0]
    # Forked from a cosine main (not at the peak).
    c = DecayBranch(Cosine(steps=4), fork_step=2, decay_steps=2, shape="linear", min_ratio=0.0)
    assert c.values() == pytest.approx([COS[0], COS[1], COS[2] / 2, 0.0])


def test_wsds_olmo_semantics_riverbed_steps():
    # Periods of 10 steps, warmup 2, decay 4, min 0: decayed checkpoint after 10 and 20 updates.
    s = WSDS(budgets=(10, 20), warmup=2, decays=(4, 4), shape="linear")
    assert s.values() == pytest.approx([0.5, 1, 1, 1, 1, 1, 0.75, 0.5, 0.25, 0.0, 1, 1, 1, 1, 1, 1, 0.75, 0.5, 0.25, 0.0])
    assert s.multiplier(25) == 0.0
    assert [p.name for p in s.phases()] == ["warmup", "stable", "decay", "stable", "decay"]


def test_cyclic_cosine_with_rewarmup():
    s = CyclicCosine(budgets=(4, 8), rewarmup=2, min_ratio=0.0)
    assert s.values() == pytest.approx([*COS, 0.5, 1.0, 0.5, 0.0])
    no_rewarm = CyclicCosine(budgets=(4, 8), min_ratio=0.0)
    assert no_rewarm.values() == pytest.approx(COS + COS)
    rewarm_from_min = CyclicCosine(budgets=(4, 8), rewarmup=2, min_ratio=0.2)
    assert rewarm_from_min.multiplier(4) == pytest.approx(0.6)  # 0.2 + 0.8 * 1/2


def test_piecewise():
    pw = Piecewise((Segment(Warmup(2), 2), Segment(Constant(0.5), 2), Segment(Cosine(steps=4))))
    assert pw.total_steps == 8
    assert pw.values() == pytest.approx([0.5, 1.0, 0.5, 0.5, *COS])
    assert pw.multiplier(20) == 0.0  # the last piece continues
    truncated = Piecewise((Segment(WSD(0, 1, 4, shape="linear"), 3),))
    assert truncated.total_steps == 3 and truncated.values() == [1.0, 0.75, 0.5]
    assert truncated.phases() == (Phase("stable", 0, 1), Phase("decay", 1, 3))


def test_tokens_helpers():
    assert tokens_to_steps(1e6, 4096) == 245  # ceil(244.14)
    assert tokens_to_steps(8192, 4096) == 2
    assert steps_to_tokens(245, 4096) == 1_003_520
    with pytest.raises(ConfigError, match="tokens"):
        tokens_to_steps(-5, 4096)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: WSD(warmup=-1, stable=1, decay=1), "wsd.warmup"),
        (lambda: WSD(warmup=0, stable=1, decay=0), "wsd.decay"),
        (lambda: WSD(warmup=0, stable=1.5, decay=1), "wsd.stable"),
        (lambda: Cosine(steps=0), "cosine.steps"),
        (lambda: Cosine(steps=5, warmup=5), "cosine.warmup"),
        (lambda: Constant(-1.0), "constant.value"),
        (lambda: WarmupStable(warmup_start=2.0), "warmup-stable.warmup_start"),
        (lambda: DecayBranch(Cosine(steps=10), fork_step=11, decay_steps=2), "decay-branch.fork_step"),
        (lambda: DecayBranch(WarmupStable(), fork_step=1, decay_steps=0), "decay-branch.decay_steps"),
        (lambda: DecayBranch(Constant(0.0), fork_step=1, decay_steps=2, shape="exp-epfml", min_ratio=0.1), "decay-branch.fork_step"),
        (lambda: WSDS(budgets=(10, 10), warmup=0, decays=(2, 2)), "wsds.budgets"),
        (lambda: WSDS(budgets=(10, 20), warmup=0, decays=(2,)), "wsds.decays"),
        (lambda: WSDS(budgets=(10, 20), warmup=0, decays=(2, 11)), r"wsds.decays\[1\]"),
        (lambda: WSDS(budgets=(10, 20), warmup=8, decays=(3, 2)), r"wsds.decays\[0\]"),
        (lambda: CyclicCosine(budgets=(4, 8), rewarmup=4), "cyclic-cosine.rewarmup"),
        (lambda: Piecewise(()), "piecewise.segments"),
        (lambda: Piecewise((Segment(WarmupStable()), Segment(Constant()))), r"piecewise.segments\[0\]"),
    ],
)
def test_validation_names_field_and_value(build, field):
    with pytest.raises(ConfigError, match=field):
        build()


def test_step_must_be_a_natural_number():
    with pytest.raises(ConfigError, match="step"):
        WSD(0, 1, 1).multiplier(-1)
    with pytest.raises(ConfigError, match="step"):
        WSD(0, 1, 1).multiplier(1.5)  # type: ignore[arg-type]
