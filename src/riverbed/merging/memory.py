"""In-memory merges of state dicts (PMA monitor, PMA-init, spike recovery).

Accumulation is float32 (float64 on request) in the fixed order of the inputs: a bf16 running
average stops moving once the update is below bf16's resolution (EMA decay >= 0.999).
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
) -> dict:
    """Return ``sum_i weights[i] * state_dicts[i]`` tensor by tensor (oldest first).

    Float tensors are accumulated in ``accumulate`` (default torch.float32) and returned in
    ``dtype`` (default: the accumulation dtype, so the merge state stays float32); non-float
    tensors (step counters, masks) are taken from the last state dict. Names and shapes must agree.

    >>> import torch
    >>> a, b = {"w": torch.tensor([1.0, 2.0])}, {"w": torch.tensor([3.0, 6.0])}
    >>> merge_state_dicts([a, b], [0.5, 0.5])["w"]
    tensor([2., 4.])
    """
    import torch

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
    out = {}
    for name, ref in first.items():
        if not isinstance(ref, torch.Tensor):
            raise MergeError(f"entry {name!r} of state dict 1 is not a tensor")
        if not ref.is_floating_point():
            out[name] = state_dicts[-1][name].detach().clone()
            continue
        acc = torch.zeros(ref.shape, dtype=acc_dtype, device=ref.device)
        for i, (sd, w) in enumerate(zip(state_dicts, weights), start=1):
            t = sd[name]
            if t.shape != ref.shape:
                raise MergeError(f"tensor {name!r} has shape {list(ref.shape)} in state dict 1 but {list(t.shape)} in state dict {i}")
            if w != 0.0:
                acc.add_(t.detach().to(acc_dtype), alpha=float(w))
        out[name] = acc if dtype is None else acc.to(dtype)
    return out
