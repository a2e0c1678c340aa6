"""In-memory merges of state dicts (PMA monitor, PMA-init, spike recovery, integrations).

Accumulation is float32 (float64 on request) in the fixed order of the inputs: a bf16 running
average stops moving once the update is below bf16's resolution (EMA decay >= 0.999). The
arithmetic is that of the streaming engine, so both give the same bits (tests/merging/test_agree.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from riverbed.errors import MergeError


def merge_state_dicts(
    state_dicts: Sequence[Mapping[str, object]],
    weights: Sequence[float],
    *,
    accumulate: object | None = None,
    dtype: object | None = None,
    require_finite: bool = False,
    names: Sequence[str] | None = None,
) -> dict:
    """Return ``sum_i weights[i] * state_dicts[i]`` tensor by tensor (oldest first): riverbed's
    one in-memory merge (PMA monitor, merged initialisation, spike recovery, integrations).

    The arithmetic is the streaming engine's (riverbed.merging.kernels): the weight rounded to
    the accumulation dtype, then ``acc = w*x`` for the first input of non-zero weight and
    ``acc += w*x`` for the next, each product and each sum rounded once, so a merge in memory
    and ``riverbed merge`` of the same checkpoints agree bit for bit. Float tensors are
    accumulated in ``accumulate`` (default torch.float32) and returned in ``dtype`` (default:
    the accumulation dtype; ``"input"``: each tensor's dtype in the last state dict); non-float
    tensors (step counters, masks) are taken from the last state dict. Names and shapes must
    agree. ``require_finite`` raises MergeError naming the tensor and the inputs (``names``)
    when the merge holds NaN/inf.

    >>> import torch
    >>> a, b = {"w": torch.tensor([1.0, 2.0])}, {"w": torch.tensor([3.0, 6.0])}
    >>> merge_state_dicts([a, b], [0.5, 0.5])["w"]
    tensor([2., 4.])
    """
    import torch  # lazy: riverbed.merging is importable without torch (the streaming engine is numpy)

    acc_dtype = accumulate or torch.float32
    if len(state_dicts) == 0 or len(state_dicts) != len(weights):
        raise MergeError(f"merge_state_dicts needs one weight per state dict, got {len(weights)} weights for {len(state_dicts)} state dicts")
    total = float(sum(weights))
    if not total > 0.0:
        raise MergeError(f"weights must sum to a positive number, got {list(weights)}")
    first = state_dicts[0]
    for i, sd in enumerate(state_dicts[1:], start=2):
        if set(sd) != set(first):
            diff = sorted(set(sd) ^ set(first))
            raise MergeError(f"state dict {i} and state dict 1 disagree on tensor {diff[0]!r}")
    ws = [torch.tensor(float(w), dtype=acc_dtype) for w in weights]  # rounded once, as the engine does
    out = {}
    for name, ref in first.items():
        if not isinstance(ref, torch.Tensor):
            raise MergeError(f"entry {name!r} of state dict 1 is not a tensor")
        if not ref.is_floating_point():
            out[name] = state_dicts[-1][name].detach().clone()
            continue
        acc = None
        for i, (sd, w, w_t) in enumerate(zip(state_dicts, weights, ws), start=1):
            t = sd[name]
            if t.shape != ref.shape:
                raise MergeError(f"tensor {name!r} has shape {list(ref.shape)} in state dict 1 but {list(t.shape)} in state dict {i}")
            if w == 0.0:
                continue  # never read, never merged (as in the engine)
            term = t.detach().to(acc_dtype) * w_t.to(t.device)
            acc = term if acc is None else acc.add_(term)
        want = state_dicts[-1][name].dtype if dtype == "input" else dtype
        out[name] = acc if want is None else acc.to(want)
    if require_finite:
        bad = [k for k, t in out.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
        if bad:
            labels = list(names) if names is not None else [f"input {i + 1}" for i in range(len(state_dicts))]
            raise MergeError(f"the merge of {', '.join(labels)} holds NaN/inf in tensor {bad[0]}")
    return out
