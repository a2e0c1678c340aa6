"""Start a new run from a merge of another run's checkpoints (PMA-init, arXiv 2505.12082).

The library behind ``riverbed init-from-merge``. The new run's config is the source run's (or
another one, e.g. a new data mix) plus an ``[init]`` section naming the merge; the merged
checkpoint is written to ``NEW_RUN/init-merge/`` at once, and :func:`riverbed.train_run` (or
``riverbed train --run NEW_RUN``) trains from it. Nothing half-made is left behind on an error.

>>> from riverbed.orchestration.init_from_merge import init_from_merge   # doctest: +SKIP
>>> made = init_from_merge("runs/ft", "runs/base", last=3)               # doctest: +SKIP
>>> made.weights, made.checkpoints                                     # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from riverbed.checkpoints import layout
from riverbed.checkpoints.layout import writer_lock
from riverbed.checkpoints.schema import read_state
from riverbed.config import RunConfig, load_config
from riverbed.config.init import InitConfig
from riverbed.errors import ConfigError, RunError
from riverbed.runs import BranchRecord, Run

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class MergedStart:
    """A new run that starts from a merge: where, from what, with which weights."""

    run: Path
    config: RunConfig
    method: str
    checkpoints: tuple[int, ...]
    """The merged checkpoints' steps, oldest first."""
    weights: tuple[float, ...]
    rejected: tuple[dict[str, Any], ...] = field(default=())
    """Checkpoints passed over (``{"step", "reason"}``), e.g. with NaN/inf weights."""


def init_from_merge(new_run: PathLike, source: PathLike, *, last: int, every: int = 1, branch: str = layout.MAIN,
                    method: str = "sma", alpha: float = 0.2, optimizer_state: str = "reset",
                    config: RunConfig | PathLike | None = None, overrides: Sequence[str] = ()) -> MergedStart:
    """Create ``new_run`` starting from the ``method`` merge of the newest ``last`` checkpoints of
    ``branch`` of ``source`` (at least ``every`` steps apart). ``config``: the new run's config (a
    TOML file or a RunConfig; default the source run's config.toml), with ``overrides`` applied.
    ``optimizer_state``: the new run's AdamW moments: "reset", "from-last" or "average"."""
    from riverbed.training.merged_init import ensure_merged_init  # lazy: loads torch, which importing this module must not

    source, new_run = Path(source), Path(new_run)
    if not (source / layout.MANIFEST).is_file() and not (source / layout.CONFIG).is_file():
        raise RunError(f"--run {source}: not a riverbed run (no {layout.MANIFEST})")
    if isinstance(config, RunConfig):
        cfg = config
    else:
        path = Path(config) if config is not None else source / layout.CONFIG
        if not path.is_file():
            raise ConfigError(f"no --config given and {path} does not exist")
        cfg = load_config(path, list(overrides))
    init = InitConfig(from_merge=str(source), branch=branch, last=last, every=every, method=method, alpha=alpha,
                      optimizer_state=optimizer_state)
    cfg = cfg.replace(init=init)
    existed = new_run.exists()
    run = Run.create(new_run, cfg)
    try:
        with writer_lock(new_run, layout.MAIN):  # one writer of the new run's main branch
            out = ensure_merged_init(init, new_run, seed=cfg.train.seed)
    except Exception:
        if not existed:
            shutil.rmtree(new_run, ignore_errors=True)  # nothing half-made is left behind
        raise
    prov = read_state(out).init_from_merge or {}
    run.add_branch(BranchRecord(layout.MAIN, "main", dict(cfg.schedule), status="stopped"))
    run.record_event(layout.MAIN, {"event": "init-from-merge", **{k: v for k, v in prov.items() if k != "paths"}})
    return MergedStart(new_run, cfg, str(prov["method"]), tuple(int(s) for s in prov["checkpoints"]),
                       tuple(float(w) for w in prov["weights"]), tuple(prov.get("rejected", [])))
