"""Decay-to-merge weights (issue 12): hand-worked values and the first-order identity they encode."""

from __future__ import annotations

import numpy as np
import pytest

from riverbed.errors import MergeError
from riverbed.merging.weights import decay_weights


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
