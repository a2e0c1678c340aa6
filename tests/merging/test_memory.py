"""In-memory merge of state dicts (float32 accumulation, fixed order)."""

import pytest
import torch

from riverbed.errors import MergeError
from riverbed.merging import ema, merge_state_dicts
from .helpers import random_state, reference


def test_matches_reference_and_stays_float32():
    sds = [random_state(i, torch.bfloat16) for i in range(4)]
    w = ema(4, 0.2)
    out = merge_state_dicts(sds, w)
    ref = reference(sds, w)
    for k, v in out.items():
        assert v.dtype == torch.float32
        assert torch.allclose(v.double(), ref[k], rtol=1e-6, atol=1e-6)
    assert merge_state_dicts(sds, w, dtype=torch.bfloat16)["lm_head.weight"].dtype == torch.bfloat16


def test_float32_state_keeps_moving_where_bf16_would_not():
    # An EMA with decay 0.999 of a bf16 weight at 1.0 pulled by 1.0078125 (one bf16 ulp above):
    # in bf16 the update is lost; accumulated in float32 it moves.
    base = {"w": torch.tensor([1.0], dtype=torch.bfloat16)}
    new = {"w": torch.tensor([1.0078125], dtype=torch.bfloat16)}
    merged = merge_state_dicts([base, new], [0.999, 0.001])["w"]
    assert merged.item() == pytest.approx(1.0 + 0.001 * 0.0078125, rel=1e-7)
    assert merged.to(torch.bfloat16).item() == 1.0


def test_non_float_from_last_and_errors():
    a = {"w": torch.ones(2), "n": torch.tensor([1])}
    b = {"w": torch.zeros(2), "n": torch.tensor([5])}
    assert merge_state_dicts([a, b], [0.5, 0.5])["n"].item() == 5
    with pytest.raises(MergeError, match="one weight per state dict"):
        merge_state_dicts([a, b], [1.0])
    with pytest.raises(MergeError, match="positive"):
        merge_state_dicts([a, b], [1.0, -1.0])
    with pytest.raises(MergeError, match=r"tensor 'w' has shape \[2\] in state dict 1 but \[3\] in state dict 2"):
        merge_state_dicts([a, {"w": torch.zeros(3), "n": torch.tensor([1])}], [0.5, 0.5])
    with pytest.raises(MergeError, match="disagree on tensor 'x'"):
        merge_state_dicts([a, {**b, "x": torch.zeros(1)}], [0.5, 0.5])
