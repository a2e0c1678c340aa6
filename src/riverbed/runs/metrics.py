"""Metrics: one JSON object per line in ``branches/<branch>/metrics.jsonl`` (+ TensorBoard).

Rows: ``{"kind": "train", "step", "tokens", "flops", "lr", "loss", "grad_norm", "tokens_per_s"}``,
``{"kind": "eval", "step", "tokens", "flops", "eval_loss"}``, and ``{"kind": "event", "step",
"event", ...}`` (resume, restore, stop). ``step`` counts completed optimizer steps (the row
describes the model after that many updates). Every row carries ``"time"`` (Unix seconds when
it was written), so a branch's training time is measured from its rows.

Resume keeps the file consistent with the checkpoint: rows after the resumed step (written by
the interrupted process after its last checkpoint) and a torn last line are dropped, with an
atomic rewrite, so the file reads as if the run had never stopped. Every line is strict JSON:
a non-finite value is ``null`` with ``"<key>_nonfinite": "nan"`` (or ``"inf"``) beside it.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from riverbed.io.atomic import write_text
from riverbed.io.strict_json import dumps as strict_dumps


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All complete rows of a metrics.jsonl (a torn last line is skipped)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


TENSORBOARD_MISSING = ("riverbed: [train] tensorboard = true but tensorboard is not installed: metrics go to "
                       "metrics.jsonl only (pip install 'riverbed[tensorboard]', or set train.tensorboard = false)")
_told: set[str] = set()


def _tensorboard_missing() -> None:
    # Once per process: a run tree opens one logger per branch and per resume.
    if TENSORBOARD_MISSING not in _told:
        _told.add(TENSORBOARD_MISSING)
        print(TENSORBOARD_MISSING, file=sys.stderr)


class MetricsLogger:
    """Append-only JSONL writer (rank 0 only; other ranks get ``enabled=False``)."""

    def __init__(self, path: str | Path, *, enabled: bool = True, tensorboard: bool = False, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self._fh = None
        self._tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            keep = [r for r in read_metrics(self.path) if resume_step is None or int(r.get("step", 0)) <= resume_step]
            write_text(self.path, "".join(strict_dumps(r) + "\n" for r in keep))
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: JSONL only, and the user is told once
                SummaryWriter = None
                _tensorboard_missing()
            if SummaryWriter is not None:
                # One log dir per branch: `tensorboard --logdir RUN/branches` shows each branch as its own run.
                self._tb = SummaryWriter(str(self.path.parent / "tensorboard"))

    def log(self, row: Mapping[str, Any]) -> None:
        if not self.enabled or self._fh is None:
            return
        # Strict JSON: a NaN/inf loss is written as null with "<key>_nonfinite": "nan" beside it.
        self._fh.write(strict_dumps({**row, "time": round(time.time(), 3)} if "time" not in row else dict(row)) + "\n")
        self._fh.flush()
        if self._tb is not None and row.get("kind") in ("train", "eval", "forecast"):
            step = int(row["step"])
            for k, v in row.items():
                if k not in ("kind", "step", "time") and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(f"{row['kind']}/{k}", v, step)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
