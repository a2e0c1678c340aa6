"""Refusing checkpoints whose weights are not finite.

A run that diverged can save NaN/inf weights; resuming or forking from them trains nothing
(every later loss is NaN) yet exits 0. ``train_branch`` checks the weights it loaded and, if
any is NaN or inf, raises CheckpointError naming the tensor and the newest checkpoint of the
same branch whose weights are all finite (the one to fork from, or to resume after moving the
bad ones away).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from riverbed.checkpoints.layout import CHECKPOINTS, MODEL_FILE, CheckpointRef, list_checkpoints
from riverbed.errors import CheckpointError


def nonfinite_tensor(tensors: dict[str, torch.Tensor]) -> str | None:
    """The first floating-point tensor holding NaN or inf, else None."""
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return name
    return None


def file_nonfinite(path: Path) -> str | None:
    """:func:`nonfinite_tensor` of a checkpoint directory's model.safetensors (None if unreadable)."""
    from safetensors.torch import load_file

    try:
        return nonfinite_tensor(load_file(str(Path(path) / MODEL_FILE)))
    except Exception:  # noqa: BLE001 - an unreadable file is no finite candidate either
        return "<unreadable>"


def newest_finite(refs: Sequence[CheckpointRef], before: Path | None = None) -> CheckpointRef | None:
    """The newest checkpoint of ``refs`` (oldest first) older than ``before`` with finite weights."""
    cands = list(refs)
    if before is not None:
        paths = [Path(r.path).resolve() for r in cands]
        if Path(before).resolve() in paths:
            cands = cands[: paths.index(Path(before).resolve())]
    for ref in reversed(cands):
        if file_nonfinite(ref.path) is None:
            return ref
    return None


def _branch_checkpoints(path: Path) -> list[CheckpointRef]:
    """The checkpoints of the branch ``path`` (RUN/branches/B/checkpoints/step_k) belongs to."""
    path = Path(path)
    if path.parent.name != CHECKPOINTS or len(path.parents) < 4:
        return []
    return list_checkpoints(path.parents[3], path.parents[1].name)


def require_finite(model: torch.nn.Module, path: Path) -> None:
    """CheckpointError if ``model`` (just loaded from ``path``) holds NaN/inf weights."""
    bad = nonfinite_tensor(dict(model.state_dict()))
    if bad is None:
        return
    good = newest_finite(_branch_checkpoints(path), before=path)
    hint = f"the newest finite checkpoint is {good.path}" if good else "no older checkpoint of that branch is finite"
    raise CheckpointError(f"{Path(path) / MODEL_FILE}: tensor {bad} holds NaN/inf; refusing to train from it ({hint})")


def check_file_finite(path: Path) -> None:
    """CheckpointError if the checkpoint directory ``path`` holds NaN/inf weights (read from disk)."""
    bad = file_nonfinite(path)
    if bad is None:
        return
    good = newest_finite(_branch_checkpoints(path), before=path)
    hint = f"the newest finite checkpoint is {good.path}" if good else "no older checkpoint of that branch is finite"
    raise CheckpointError(f"{Path(path) / MODEL_FILE}: tensor {bad} holds NaN/inf; refusing to train from it ({hint})")
