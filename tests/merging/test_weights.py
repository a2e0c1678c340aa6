"""Merge weights against hand-computed values (PMA paper, arXiv 2505.12082; background section 3)."""

import math

import numpy as np
import pytest

from riverbed.errors import MergeError
from riverbed.merging import weights as W
from riverbed.merging.weights import decay_weights


def test_sma():
    assert W.sma(4) == (0.25, 0.25, 0.25, 0.25)
    assert W.sma(1) == (1.0,)


def test_ema_recursive_golden_alpha_01_n10():
    w = W.ema(10, 0.1)
    # w_1 = 0.9^9, w_i = 0.1 * 0.9^(10-i): the oldest weighs most.
    assert w[0] == pytest.approx(0.387420489, abs=1e-12)
    assert w[-1] == pytest.approx(0.1, abs=1e-15)
    assert w[1] == pytest.approx(0.1 * 0.9**8, abs=1e-15)
    assert round(w[0], 3) == 0.387 and round(w[-1], 3) == 0.100
    assert math.fsum(w) == pytest.approx(1.0, abs=1e-12)


def test_ema_recursive_is_the_recursion():
    # Run M(i) = a*M_i + (1-a)*M(i-1) on one-hot "models" and read off each weight.
    n, a = 6, 0.2
    for j in range(n):
        m = 1.0 if j == 0 else 0.0
        for i in range(1, n):
            m = a * (1.0 if i == j else 0.0) + (1 - a) * m
        assert W.ema(n, a)[j] == pytest.approx(m, abs=1e-15)


def test_ema_small_hand_values():
    assert W.ema(3, 0.5) == (0.25, 0.25, 0.5)
    # normalised closed form: 0.5*0.5^(3-i) = [0.125, 0.25, 0.5], sum 0.875 -> [1/7, 2/7, 4/7]
    assert W.ema(3, 0.5, form="normalized") == pytest.approx((1 / 7, 2 / 7, 4 / 7), abs=1e-15)
    assert W.ema(1, 0.3) == (1.0,)


def test_wma():
    assert W.wma(4) == pytest.approx((0.1, 0.2, 0.3, 0.4), abs=1e-15)
    assert W.wma(steps=[100, 200, 300]) == pytest.approx((1 / 6, 2 / 6, 3 / 6), abs=1e-15)


def test_explicit_and_dispatch():
    assert W.explicit([1, 1, 2]) == (0.25, 0.25, 0.5)
    assert W.explicit([2.0, -0.5]) == pytest.approx((4 / 3, -1 / 3))
    assert W.weights_for("weights", 2, weights=[3, 1]) == (0.75, 0.25)
    assert W.weights_for("ema", 3, alpha=0.5) == (0.25, 0.25, 0.5)
    assert W.weights_for("wma", 2, steps=[1, 3]) == (0.25, 0.75)


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda: W.explicit([1.0, -1.0]), "sum to a positive number"),
        (lambda: W.explicit([0.0, 0.0]), "sum to a positive number"),
        (lambda: W.ema(3, 0.0), "alpha"),
        (lambda: W.ema(3, 1.5), "alpha"),
        (lambda: W.ema(3, 0.1, form="closed"), "form"),
        (lambda: W.sma(0), "positive integer"),
        (lambda: W.weights_for("ema", 3), "alpha"),
        (lambda: W.weights_for("weights", 3, weights=[1, 2]), "2 given"),
        (lambda: W.weights_for("median", 3), "'median'"),
        (lambda: W.wma(steps=[1.0, float("nan")]), "nan"),
    ],
)
def test_bad_weights(call, needle):
    with pytest.raises(MergeError, match=needle):
        call()


def test_format_weights_lists_every_checkpoint():
    text = W.format_weights(W.ema(3, 0.5), ["a", "b", "c"])
    assert text.splitlines() == ["   1  0.250000  a", "   2  0.250000  b", "   3  0.500000  c"]


# Decay-to-merge weights (issue 12): hand-worked values and the first-order identity they encode.
def test_hand_worked_three_update_decay():
    # K = 3 updates at multipliers 1, 0.6, 0.2 (r_0 = 1):
    # c_0 = 1 - 1 = 0; c_1 = 1 - 0.6 = 0.4; c_2 = 0.6 - 0.2 = 0.4; c_3 = r_2 = 0.2.
    assert decay_weights([1.0, 0.6, 0.2]) == pytest.approx((0.0, 0.4, 0.4, 0.2))


def test_riverbed_style_decay_starts_below_one():
    # riverbed's first decay update is already below the peak: the fork checkpoint gets weight 1 - r_0.
    assert decay_weights([0.75, 0.5, 0.25, 0.0]) == pytest.approx((0.25, 0.25, 0.25, 0.25, 0.0))


def test_merge_lands_where_the_decay_ends_with_fixed_gradients():
    # With the same gradients g_j the merge of the constant-LR iterates equals the decayed iterate exactly.
    rng = np.random.default_rng(0)
    K, eta = 6, 0.1
    r = np.sort(rng.uniform(0, 1, K))[::-1]
    g = rng.normal(size=(K, 5))
    theta_s = rng.normal(size=5)
    main = [theta_s - eta * g[:k].sum(0) for k in range(K + 1)]
    decayed = theta_s - eta * (r[:, None] * g).sum(0)
    c = decay_weights(r.tolist())
    assert sum(c) == pytest.approx(1.0)
    np.testing.assert_allclose(sum(ck * m for ck, m in zip(c, main)), decayed, atol=1e-12)


@pytest.mark.parametrize("bad", [[], [1.2], [0.5, 0.7], [float("nan")]])
def test_bad_multipliers_name_the_index(bad):
    with pytest.raises(MergeError, match="decay multipliers"):
        decay_weights(bad)


@pytest.mark.parametrize("raw, want", [([1e308, 1e308], (0.5, 0.5)), ([1.7e308, 1.7e308, 1.7e308 / 2], (0.4, 0.4, 0.2)),
                                       ([5e-324, 5e-324], (0.5, 0.5))])
def test_explicit_weights_near_the_float_limits_normalise(raw, want):
    assert W.explicit(raw) == pytest.approx(want)


def test_huge_weights_on_the_cli_merge_or_refuse_without_a_traceback(tmp_path, capsys):
    from riverbed.cli.main import main
    from .helpers import random_state, write_dir

    a, b = write_dir(tmp_path / "a", random_state(0)), write_dir(tmp_path / "b", random_state(1))
    assert main(["merge", str(tmp_path / "m"), str(a), str(b), "--weights", "1e308,1e308", "--no-progress"]) == 0
    assert main(["merge", str(tmp_path / "n"), str(a), str(b), "--weights", "1e308,-1e308", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "weights must sum to a positive number" in err and "Traceback" not in err
