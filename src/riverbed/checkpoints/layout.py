"""Where things live on disk. The one module that owns run-tree and checkpoint paths.

::

    RUN/
      run.json                       manifest: config, branches, lineage, events (atomic rewrite)
      config.toml                    the config the run was created with
      init-merge/                    ([init] from_merge only) the merged checkpoint it started from
      branches/<branch>/
        .writer.lock                 held (flock) by the one process writing this branch
        metrics.jsonl                one JSON object per logged step / evaluation
        checkpoints/step_<%010d>/
          model.safetensors          weights, Hugging Face Llama/Mixtral names
          optimizer.safetensors      optimizer moments, flattened names
          state.json                 step, tokens, flops, losses, schedule spec, data position
          rng.safetensors            torch RNG states (uint8 tensors)
          config.json                Hugging Face config: the directory loads with from_pretrained
          guard.json                 ([guard] only) spike-guard state, so a resume == not stopping
        quarantine/recovery_<k>/     checkpoints a spike recovery set aside (spiking weights)

A checkpoint directory with a ``model.safetensors`` is also a valid input of the merge
engine, exactly like a single-file Hugging Face model directory.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from riverbed.errors import RunError
from riverbed.io.lock import lock_file

MANIFEST = "run.json"
RUN_LOCK = ".lock"  # RUN/.lock: held while run.json is rewritten (riverbed.runs.manifest)
CONFIG = "config.toml"
BRANCHES = "branches"
CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
RNG_FILE = "rng.safetensors"
HF_CONFIG_FILE = "config.json"
GUARD_FILE = "guard.json"  # spike-guard state (detector window, recoveries), next to state.json
QUARANTINE = "quarantine"  # checkpoints set aside by a spike recovery (they hold spiking weights)
INIT_MERGE = "init-merge"  # the merged checkpoint a run initialised from ([init] from_merge)
MAIN = "main"
WRITER_LOCK = ".writer.lock"  # per-branch writer lock (riverbed.io.lock)
JOBS = "jobs"  # executor job files and logs (Slurm/submitit), RUN/jobs/<backend>

_STEP_RE = re.compile(r"^step_(\d+)$")
# A branch name is one path component that cannot be ".", "..", empty, hidden (".NAME.removing" and the
# temporaries are riverbed's) or hold a separator: RUN/branches/<name> is always a child of RUN/branches.
BRANCH_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")


def check_branch_name(name: object, where: str = "") -> str:
    """``name`` if it is a valid branch name, else a RunError naming it (and ``where`` it came from)."""
    if not isinstance(name, str) or not BRANCH_NAME_RE.fullmatch(name):
        at = f"{where}: " if where else ""
        raise RunError(f"{at}branch name {name!r} is not valid: use letters, digits and . _ + - "
                       "(starting with a letter or digit), at most 100 characters")
    return name


def branch_dir(run: str | Path, branch: str) -> Path:
    """``RUN/branches/<branch>``; RunError for a name that is not a branch name."""
    return Path(run) / BRANCHES / check_branch_name(branch)


def checkpoints_dir(run: str | Path, branch: str) -> Path:
    return branch_dir(run, branch) / CHECKPOINTS


def checkpoint_name(step: int) -> str:
    return f"step_{step:010d}"


def checkpoint_dir(run: str | Path, branch: str, step: int) -> Path:
    return checkpoints_dir(run, branch) / checkpoint_name(step)


def metrics_path(run: str | Path, branch: str) -> Path:
    return branch_dir(run, branch) / METRICS


def writer_lock_path(run: str | Path, branch: str) -> Path:
    """The lock file the one process writing ``branch`` holds (riverbed.io.lock)."""
    return branch_dir(run, branch) / WRITER_LOCK


def writer_lock(run_dir: str | os.PathLike[str], branch: str) -> contextlib.AbstractContextManager[None]:
    """The writer lock of ``branch`` of the run at ``run_dir`` (riverbed.io.lock)."""
    return lock_file(writer_lock_path(run_dir, branch), what=f"branch {branch!r} of {run_dir}")


def jobs_dir(run: str | Path, backend: str) -> Path:
    """Where an executor backend keeps its job files and logs for this run (riverbed.executors)."""
    return Path(run) / JOBS / backend


def quarantine_dir(run: str | Path, branch: str, recovery: int) -> Path:
    """Where the ``recovery``-th spike recovery of ``branch`` moves the checkpoints it discards."""
    return branch_dir(run, branch) / QUARANTINE / f"recovery_{recovery:03d}"


def init_merge_dir(run: str | Path) -> Path:
    """The merged checkpoint (model, optimizer, state.json at step 0) a run was initialised from."""
    return Path(run) / INIT_MERGE


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
