"""Where things live on disk. The one module that owns run-tree and checkpoint paths.

::

    RUN/
      run.json                       manifest: config, branches, lineage, events (atomic rewrite)
      config.toml                    the config the run was created with
      branches/<branch>/
        metrics.jsonl                one JSON object per logged step / evaluation
        checkpoints/step_<%010d>/
          model.safetensors          weights, Hugging Face Llama/Mixtral names
          optimizer.safetensors      optimizer moments, flattened names
          state.json                 step, tokens, flops, losses, schedule spec, data position
          rng.safetensors            torch RNG states (uint8 tensors)

A checkpoint directory with a ``model.safetensors`` is also a valid input of the merge
engine, exactly like a single-file Hugging Face model directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "run.json"
CONFIG = "config.toml"
BRANCHES = "branches"
CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
RNG_FILE = "rng.safetensors"
MAIN = "main"

_STEP_RE = re.compile(r"^step_(\d+)$")


def branch_dir(run: str | Path, branch: str) -> Path:
    return Path(run) / BRANCHES / branch


def checkpoints_dir(run: str | Path, branch: str) -> Path:
    return branch_dir(run, branch) / CHECKPOINTS


def checkpoint_name(step: int) -> str:
    return f"step_{step:010d}"


def checkpoint_dir(run: str | Path, branch: str, step: int) -> Path:
    return checkpoints_dir(run, branch) / checkpoint_name(step)


def metrics_path(run: str | Path, branch: str) -> Path:
    return branch_dir(run, branch) / METRICS


@dataclass(frozen=True)
class CheckpointRef:
    """A saved checkpoint found on disk (complete: its state.json exists)."""

    step: int
    path: Path


def list_checkpoints(run: str | Path, branch: str = MAIN) -> list[CheckpointRef]:
    """Complete checkpoints of ``branch``, oldest first. Temporary (half-written) ones are skipped."""
    root = checkpoints_dir(run, branch)
    if not root.is_dir():
        return []
    refs = []
    for child in root.iterdir():
        m = _STEP_RE.match(child.name)
        if m and (child / STATE_FILE).is_file() and (child / MODEL_FILE).is_file():
            refs.append(CheckpointRef(int(m.group(1)), child))
    return sorted(refs, key=lambda r: r.step)
