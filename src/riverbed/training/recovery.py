"""Recovering from a loss spike: pick the healthy checkpoints, merge them, set the optimizer state.

These pieces are shared by riverbed's trainer guard (:mod:`riverbed.training.spike_guard`),
merged initialisation (:mod:`riverbed.training.merged_init`) and the Hugging Face callback
(:mod:`riverbed.integrations.hf`). Tensors are plain ``{name: tensor}`` dicts; optimizer states
are flat ``{"<param_name>.exp_avg": t, ...}`` dicts (names, not indices, so the states of several
checkpoints line up like their weights).

The merge itself is riverbed.merging.merge_state_dicts and the choice of checkpoints
riverbed.merging.select.pick_spaced: one of each for the whole package.

Example::

    >>> merge_coefficients("wma", 3)
    [0.16666666666666666, 0.3333333333333333, 0.5]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from riverbed.checkpoints.layout import MODEL_FILE, OPTIMIZER_FILE
from riverbed.checkpoints.state import read_safetensors
from riverbed.errors import CheckpointError, MergeError
from riverbed.merging.memory import merge_state_dicts
from riverbed.merging.select import pick_spaced
from riverbed.merging.weights import weights_for  # the one place that owns merge weights


def merge_coefficients(method: str, n: int, alpha: float = 0.2) -> list[float]:
    """Merge weights of ``n`` checkpoints, oldest first (background: PMA, arXiv 2505.12082).

    sma: 1/n. ema: the recursion M(i) = alpha*M_i + (1-alpha)*M(i-1) from M(1) = M_1, i.e.
    w_1 = (1-alpha)^(n-1), w_i = alpha*(1-alpha)^(n-i). wma: w_i ∝ i.
    """
    return [float(w) for w in weights_for(method, n, alpha=alpha)]


def nonfinite_names(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of floating-point tensors holding NaN or inf."""
    return [k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def weights_finite(module: torch.nn.Module) -> bool:
    """True when every parameter is finite (one fused reduction per parameter, no host copy)."""
    with torch.no_grad():
        flags = [torch.isfinite(p).all() for p in module.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


def merge_optimizer_states(states: Sequence[Mapping[str, torch.Tensor]], policy: str,
                           coefficients: Sequence[float]) -> dict[str, torch.Tensor] | None:
    """The optimizer state after a recovery, by policy (the paper leaves it open).

    ``states`` are flat ``{"<param>.<key>": tensor}`` dicts (riverbed's optimizer.safetensors
    layout), oldest first. reset -> None (fresh moments); from-last -> the newest state;
    average -> the moments merged with the weights' coefficients, keeping the newest state's
    scalar entries (``step``: Adam's bias correction then matches the moments' age).
    """
    if policy == "reset":
        return None
    if not states:
        raise CheckpointError(f"optimizer_state={policy!r} needs saved optimizer states, none found")
    if policy == "from-last":
        return {k: v.clone() for k, v in states[-1].items()}
    if policy != "average":
        raise MergeError(f"unknown optimizer_state policy {policy!r} (reset | from-last | average)")
    newest = states[-1]
    moments = [k for k, v in newest.items() if v.is_floating_point() and v.dim() > 0 and not k.endswith(".step")]
    merged = merge_state_dicts([{k: sd[k] for k in moments if k in sd} for sd in states], coefficients,
                               dtype="input", require_finite=True, names=[f"optimizer state {i + 1}" for i in range(len(states))])
    return {k: merged[k] if k in merged else v.clone() for k, v in newest.items()}


def describe_merge(steps: Sequence[int], coefficients: Sequence[float], method: str) -> dict[str, Any]:
    """The self-describing part of a recovery event: which checkpoints, which weights."""
    return {"method": method, "checkpoints": [int(s) for s in steps],
            "weights": [round(float(c), 6) for c in coefficients],
            "weights_sum": round(math.fsum(coefficients), 6)}


# --------------------------------------------------------------------------------------------
# Checkpoints on disk: pick healthy ones, merge them (weights + optimizer state by policy)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MergedCheckpoint:
    """The result of merging checkpoints: weights, optimizer state (None = reset), provenance."""

    model: dict[str, torch.Tensor]
    optimizer: dict[str, torch.Tensor] | None
    steps: list[int]
    paths: list[Path]
    coefficients: list[float]
    method: str
    rejected: list[dict[str, Any]] = field(default_factory=list)
    """Checkpoints passed over, each {"step", "path", "reason"} (NaN/inf weights, unreadable)."""

    def describe(self) -> dict[str, Any]:
        return {**describe_merge(self.steps, self.coefficients, self.method),
                "paths": [str(p) for p in self.paths], "rejected": self.rejected}


def pick_checkpoints(refs: Sequence[Any], *, count: int, onset: int | None = None, margin: int = 0,
                     every: int = 1) -> tuple[list[Any], list[dict[str, torch.Tensor]], list[dict[str, Any]]]:
    """Choose up to ``count`` checkpoints (``refs``: objects with ``.step`` and ``.path``) for a merge.

    Only checkpoints saved before ``onset - margin`` qualify (all when ``onset`` is None). The
    pick is riverbed's one rule (riverbed.merging.select.pick_spaced, as ``riverbed merge
    --every``): going back from the newest, each checkpoint at least ``every`` steps before the
    previous pick; one whose weights hold NaN/inf or cannot be read is rejected (and reported)
    and the next older one is taken instead. Returns the chosen refs and their weights (oldest
    first) and the rejections.
    """
    limit = None if onset is None else onset - margin
    cands = sorted((r for r in refs if limit is None or r.step < limit), key=lambda r: r.step)
    loaded: dict[int, dict[str, torch.Tensor]] = {}
    rejected: list[dict[str, Any]] = []

    def healthy(ref: Any) -> bool:
        try:
            tensors = read_safetensors(Path(ref.path) / MODEL_FILE)
            bad = nonfinite_names(tensors)
            reason = f"tensor {bad[0]} holds NaN/inf" if bad else None
        except CheckpointError as exc:
            reason = str(exc)
        if reason is not None:
            rejected.append({"step": int(ref.step), "path": str(ref.path), "reason": reason})
            return False
        loaded[id(ref)] = tensors
        return True

    chosen = pick_spaced(cands, last=count, every=every, key=lambda r: r.step, accept=healthy)
    return chosen, [loaded[id(r)] for r in chosen], rejected


def merge_checkpoints(refs: Sequence[Any], weights: Sequence[Mapping[str, torch.Tensor]], *, method: str,
                      alpha: float = 0.2, optimizer_state: str = "reset",
                      rejected: Sequence[dict[str, Any]] = ()) -> MergedCheckpoint:
    """Merge the picked checkpoints' weights (``method``) and optimizer states (``optimizer_state``)."""
    if not refs:
        raise CheckpointError("no checkpoint to merge")
    coeffs = merge_coefficients(method, len(refs), alpha)
    labels = [str(r.path) for r in refs]
    model = merge_state_dicts(weights, coeffs, dtype="input", require_finite=True, names=labels)
    opt_states = []
    if optimizer_state == "from-last":
        opt_states = [read_safetensors(Path(refs[-1].path) / OPTIMIZER_FILE)]
    elif optimizer_state == "average":
        opt_states = [read_safetensors(Path(r.path) / OPTIMIZER_FILE) for r in refs]
    opt = merge_optimizer_states(opt_states, optimizer_state,
                                 coeffs if optimizer_state == "average" else [1.0])
    if opt is not None:
        bad = nonfinite_names(opt)
        if bad:
            raise MergeError(f"optimizer state {bad[0]} of {labels[-1]} holds NaN/inf; use optimizer_state = 'reset'")
    return MergedCheckpoint(model, opt, [int(r.step) for r in refs], [Path(r.path) for r in refs], coeffs,
                            method, list(rejected))
