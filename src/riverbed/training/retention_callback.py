"""``[train] keep``: delete the main-branch checkpoints the retention plan does not need, as training goes.

After each main-branch checkpoint (``on_checkpoint``) the callback asks the
:class:`riverbed.runs.retention.RetentionPlan` which saved checkpoints to keep -- its rules, the
forks of every branch in run.json, each segment end (state.json reason "final"), the newest -- and
prunes the rest. A prune is crash-safe: the directory is first renamed to ``.pruning-step_N`` (one
atomic rename: from then on no reader lists it as a checkpoint, and nothing ever renames it back),
then deleted; a process killed in between leaves the ``.pruning-*`` directory, which the next run's
first hook deletes. Each prune is logged as an ``{"kind": "event", "event": "prune"}`` metrics row.
Only rank 0 touches files.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from riverbed.checkpoints import layout
from riverbed.checkpoints.schema import read_state
from riverbed.config import RunConfig
from riverbed.errors import CheckpointError
from riverbed.runs.manifest import read_manifest
from riverbed.runs.retention import RetentionPlan, build_retention
from riverbed.training.callbacks import Callback

if TYPE_CHECKING:  # pragma: no cover
    from riverbed.checkpoints.layout import CheckpointRef
    from riverbed.training.callbacks import TrainContext

PRUNING_PREFIX = ".pruning-"


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def finish_pending(checkpoints: Path) -> list[str]:
    """Delete what an interrupted prune left (``.pruning-*`` directories); their names."""
    if not checkpoints.is_dir():
        return []
    done = []
    for child in sorted(checkpoints.iterdir()):
        if child.name.startswith(PRUNING_PREFIX) and child.is_dir():
            shutil.rmtree(child)
            done.append(child.name)
    return done


def prune_checkpoint(path: Path) -> int:
    """Rename ``path`` out of the checkpoint namespace, then delete it; the bytes freed."""
    size = _dir_bytes(path)
    doomed = path.with_name(PRUNING_PREFIX + path.name)
    os.replace(path, doomed)  # atomic: after this the checkpoint is gone for every reader
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename is durable before any byte is deleted
    finally:
        os.close(fd)
    shutil.rmtree(doomed)
    return size


def protected_steps(run_dir: Path, branch: str) -> dict[int, str]:
    """Steps of ``branch`` that must survive whatever the rules: forks of the run tree's branches
    and checkpoints saved at the end of a segment (plan fork points, the branch's end)."""
    out: dict[int, str] = {}
    manifest = run_dir / layout.MANIFEST
    if manifest.is_file():  # a bare train_branch() directory has no run tree
        for b in read_manifest(manifest).branches.values():
            if b.parent == branch and b.fork is not None:
                out[b.fork.step] = f"fork of branch {b.name!r}"
    for ref in layout.list_checkpoints(run_dir, branch):
        try:
            reason = read_state(ref.path).reason
        except CheckpointError:
            reason = None
        if reason == "final":
            out.setdefault(ref.step, "segment end")
    return out


class RetentionCallback(Callback):
    """Prune the main branch's checkpoints to what ``plan`` keeps (see the module docstring)."""

    def __init__(self, plan: RetentionPlan, branch: str = layout.MAIN) -> None:
        self.plan = plan
        self.branch = branch
        self._started = False

    @classmethod
    def from_config(cls, cfg: RunConfig, base: str | Path | None = None) -> RetentionCallback:
        """From ``[train] keep`` (plus the [guard] / [pma] counts the newest checkpoints must cover)."""
        guard, pma = getattr(cfg, "guard", None), getattr(cfg, "pma", None)
        floor = max(1, getattr(guard, "pma_count", 0) if guard is not None else 0, getattr(pma, "count", 0) if pma is not None else 0)
        t = cfg.train
        return cls(build_retention(t.keep, ckpt_every=t.ckpt_every, tokens_per_step=t.tokens_per_step, floor=floor, base=base))

    def _start(self, ctx: TrainContext) -> None:
        if self._started:
            return
        self._started = True
        if ctx.is_main and ctx.branch == self.branch:
            for name in finish_pending(layout.checkpoints_dir(ctx.run_dir, self.branch)):
                ctx.log({"kind": "event", "event": "prune-finished", "path": name})

    def on_step_end(self, ctx: TrainContext) -> None:
        self._start(ctx)

    def on_checkpoint(self, ctx: TrainContext, ref: CheckpointRef) -> None:
        self._start(ctx)
        if not ctx.is_main or ctx.branch != self.branch:
            return
        refs = {r.step: r.path for r in layout.list_checkpoints(ctx.run_dir, self.branch)}
        kept, prune = self.plan.keep(refs, protected_steps(ctx.run_dir, self.branch))
        for step in prune:
            freed = prune_checkpoint(refs[step])
            ctx.log({"kind": "event", "event": "prune", "pruned_step": step, "freed_bytes": freed,
                     "kept_steps": sorted(kept)})
