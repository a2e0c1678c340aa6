"""Decay-free scaling points: PMA merges of main-branch checkpoints instead of decay branches.

The PMA paper (arXiv 2505.12082) found that merging stable-phase checkpoints predicts the
decayed model without paying for the decay. Here, for every finished decay branch of a run,
the last ``last`` main-branch checkpoints up to the branch's end step (its budget) are merged
in memory (``riverbed.merging.merge_state_dicts``; SMA/EMA/WMA weights) and evaluated on the
run's fixed held-out batches, the same ones the trainer evaluates every branch on. Each merge
is a point at the tokens of its newest checkpoint; it costs no training, only evaluation.

>>> study = merge_points("runs/s1", last=4)                 # doctest: +SKIP
>>> [(r.branch, r.merge_loss - r.decayed_loss) for r in study.rows]   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from riverbed.checkpoints.layout import MODEL_FILE
from riverbed.checkpoints.schema import read_state
from riverbed.errors import RiverbedError, ScalingError
from riverbed.merging.memory import merge_state_dicts
from riverbed.merging.select import pick_spaced
from riverbed.merging.weights import weights_for
from riverbed.runs import Run
from riverbed.runs.config_io import load_run_config
from riverbed.scaling.points import Points, run_unit


@dataclass(frozen=True)
class MergeRow:
    """One decay branch and the merge of main checkpoints up to its budget."""

    branch: str
    decayed_tokens: int
    decayed_loss: float
    merge_steps: tuple[int, ...]
    merge_tokens: int
    merge_loss: float
    last_loss: float
    """Held-out loss of the newest merged checkpoint alone (the undecayed, unmerged model)."""

    @property
    def gap(self) -> float:
        """merge loss - decayed loss (positive: the decay still wins)."""
        return self.merge_loss - self.decayed_loss

    def to_json(self) -> dict:
        return {"branch": self.branch, "decayed_tokens": self.decayed_tokens, "decayed_loss": self.decayed_loss, "merge_steps": list(self.merge_steps), "merge_tokens": self.merge_tokens, "merge_loss": self.merge_loss, "last_loss": self.last_loss, "gap": self.gap}


@dataclass(frozen=True)
class MergeStudy:
    run: str
    method: str
    last: int
    rows: tuple[MergeRow, ...]
    merged: Points
    """The merge points (kind "merge")."""
    decayed: Points
    """The decay-branch endpoints they stand in for (kind "decay")."""


def merge_points(run_dir: str | Path, *, last: int = 4, every: int = 1, method: str = "sma", alpha: float | None = None,
                 progress: bool = False) -> MergeStudy:
    """Merge and evaluate main checkpoints at every finished decay branch's budget: the last
    ``last`` main checkpoints ``every`` steps apart at or before it (riverbed.merging.select.pick_spaced,
    the rule of ``riverbed merge --run``; ``every=1``: the last ``last`` checkpoints)."""
    from riverbed.checkpoints.state import read_safetensors  # lazy: loads torch, which importing this module must not
    from riverbed.training.evaluate import HeldoutEvaluator  # lazy: torch, as above

    if last < 1:
        raise ScalingError(f"--merge-last must be >= 1, got {last}")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ScalingError(f"every={every!r}: expected a positive number of steps between merged checkpoints")
    run_dir = Path(run_dir)
    try:
        run = Run(run_dir)
        cfg = load_run_config(run_dir)
        decays = [b for b in run.branches if b.kind == "decay" and b.status == "finished" and b.final is not None and b.final.eval_loss is not None]
        ckpts = run.checkpoints("main")
    except RiverbedError as exc:
        raise ScalingError(f"run {run_dir}: {exc}") from exc
    if not decays:
        raise ScalingError(f"run {run_dir} has no finished decay branches to compare merges with")
    if not ckpts:
        raise ScalingError(f"run {run_dir} has no main-branch checkpoints to merge")
    if method == "ema" and alpha is None:
        alpha = 0.2  # the PMA paper's better EMA early in training
    evaluator = HeldoutEvaluator(cfg)  # the trainer's held-out batches, device, autocast and chunking
    cache: dict[int, dict] = {}

    def tensors(step: int, path: Path) -> dict:
        if step not in cache:
            cache[step] = read_safetensors(path / MODEL_FILE)
        return cache[step]

    def loss_of(state: dict, source: str) -> float:
        return evaluator.loss(state, source)

    rows = []
    for b in decays:
        picked = pick_spaced([c for c in ckpts if c.step <= b.final.step], last=last, every=every, key=lambda c: c.step)
        if not picked:
            raise ScalingError(f"run {run_dir}: no main checkpoint at or before step {b.final.step} for branch {b.name!r}")
        w = weights_for(method, len(picked), alpha=alpha)
        states = [tensors(c.step, c.path) for c in picked]
        merged = merge_state_dicts(states, w)
        newest = picked[-1]
        rows.append(
            MergeRow(
                branch=b.name,
                decayed_tokens=int(b.final.tokens),
                decayed_loss=float(b.final.eval_loss),
                merge_steps=tuple(c.step for c in picked),
                merge_tokens=read_state(newest.path).tokens,
                merge_loss=loss_of(merged, f"merge of {len(picked)} checkpoints"),
                last_loss=loss_of(states[-1], str(newest.path)),
            )
        )
    n_params = float(run.manifest.model.get("n_params", 0))
    unit = run_unit(run.manifest)
    k = len(rows)
    name = run_dir.name
    merged_pts = Points(
        np.full(k, n_params), np.array([r.merge_tokens for r in rows], float), np.array([r.merge_loss for r in rows]),
        tuple(f"{name}/merge@{r.merge_steps[-1]}" for r in rows), ("merge",) * k, (unit,) * k, tuple({"branch": r.branch} for r in rows),
    )
    decayed_pts = Points(
        np.full(k, n_params), np.array([r.decayed_tokens for r in rows], float), np.array([r.decayed_loss for r in rows]),
        tuple(f"{name}/{r.branch}" for r in rows), ("decay",) * k, (unit,) * k, tuple({"branch": r.branch} for r in rows),
    )
    return MergeStudy(str(run_dir), method, last, tuple(rows), merged_pts, decayed_pts)
