"""A trainer callback that keeps ``run.json`` in step with the branch's checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from riverbed.runs.manifest import Point
from riverbed.training.callbacks import Callback
from riverbed.runs.run import Run


class ManifestCallback(Callback):
    """After every checkpoint, record it as the branch's progress (step, tokens, FLOPs, loss).

    Only the process that writes checkpoints (rank 0) touches the manifest.
    """

    def __init__(self, run: Run, branch: str) -> None:
        self.run = run
        self.branch = branch

    def on_checkpoint(self, ctx: Any, ref: Any) -> None:
        dist = getattr(ctx, "dist", None)
        if dist is not None and not getattr(dist, "is_main", True):
            return
        try:
            rel = str(Path(ref.path).relative_to(self.run.path))
        except ValueError:
            rel = str(ref.path)
        point = Point(int(ctx.step), int(ctx.tokens), float(ctx.flops), ctx.last_eval_loss, rel)
        self.run.set_progress(self.branch, point)
