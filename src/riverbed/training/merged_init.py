"""Merged initialisation (PMA-init): start a new run from a merge of another run's checkpoints.

The PMA paper starts continued training / SFT from the average of the last checkpoints: lower
loss early, smoother gradient norms. :func:`write_merged_init` merges the last ``N`` checkpoints
of a run (every ``V``-th, SMA/EMA/WMA) and writes the result as an ordinary checkpoint
directory at step 0 (weights, optimizer state by policy, seeded RNG), which ``train_branch``
then starts from exactly like a fork starts from its parent's checkpoint. ``[init] from_merge``
in a config does this automatically when the run has no checkpoint yet.

>>> from riverbed.config.init import InitConfig
>>> write_merged_init(InitConfig(from_merge="runs/base", last=3), "runs/ft/init-merge")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import torch

from riverbed.checkpoints import layout
from riverbed.checkpoints.schema import CheckpointState, DataPosition, read_state
from riverbed.checkpoints.state import OPTIMIZER_FORMAT, write_checkpoint
from riverbed.errors import CheckpointError, ConfigError, RunError
from riverbed.config.init import InitConfig
from riverbed.training.recovery import MergedCheckpoint, merge_checkpoints, pick_checkpoints


def merge_run_checkpoints(init: InitConfig) -> MergedCheckpoint:
    """Merge the last ``init.last`` checkpoints (every ``init.every``-th) of ``init.from_merge``.

    Checkpoints whose weights hold NaN/inf are passed over (listed in ``.rejected``); fewer
    usable checkpoints than asked is a CheckpointError naming what exists.
    """
    source = Path(init.from_merge)
    if not source.is_dir():
        raise RunError(f"init.from_merge={init.from_merge!r}: no such run directory")
    refs = layout.list_checkpoints(source, init.branch)
    if not refs:
        raise CheckpointError(f"init.from_merge={init.from_merge!r}: branch {init.branch!r} has no checkpoints "
                              f"(looked in {layout.checkpoints_dir(source, init.branch)})")
    picked, weights, rejected = pick_checkpoints(refs, count=init.last, every=init.every)
    if len(picked) < init.last:
        bad = f"; rejected: {[(r['step'], r['reason']) for r in rejected]}" if rejected else ""
        raise CheckpointError(f"init.last={init.last} (every {init.every}): only {len(picked)} usable checkpoints in "
                              f"{layout.checkpoints_dir(source, init.branch)} (steps {[r.step for r in refs]}){bad}")
    return merge_checkpoints(picked, weights, method=init.method, alpha=init.alpha,
                             optimizer_state=init.optimizer_state, rejected=rejected)


def write_merged_init(init: InitConfig, out: str | Path, *, seed: int = 0) -> CheckpointState:
    """Write the merge as a step-0 checkpoint directory at ``out`` (atomically); return its state.

    The state records where the weights came from (``"init_from_merge"``: run, branch, steps,
    weights, optimizer policy). The RNG is the one ``torch.manual_seed(seed)`` gives, as for a
    run started from scratch.
    """
    merged = merge_run_checkpoints(init)
    source_state = read_state(merged.paths[-1])
    provenance = {"run": str(init.from_merge), "branch": init.branch, "every": init.every,
                  "optimizer_state": init.optimizer_state, **merged.describe(),
                  "source_step": source_state.step, "source_tokens": source_state.tokens}
    state = CheckpointState(step=0, tokens=0, flops=0.0, branch=layout.MAIN, lr_scale=1.0,
                            data=DataPosition(position=0, sample=0, seed=seed, offset=0), init_from_merge=provenance)
    opt = merged.optimizer or {}
    rng = {"cpu": torch.Generator().manual_seed(seed).get_state()}
    write_checkpoint(out, merged.model, (opt, {"format": OPTIMIZER_FORMAT, "param_groups": "[]"}), state,
                     rng=rng, overwrite=True)
    return state


def ensure_merged_init(init: InitConfig, run_dir: str | Path, *, seed: int = 0) -> Path:
    """The run's merged-init checkpoint (``RUN/init-merge``), written on first use and reused
    afterwards so that a restarted run starts from the very same weights."""
    out = layout.init_merge_dir(run_dir)
    if not (out / layout.STATE_FILE).is_file():
        write_merged_init(init, out, seed=seed)
        return out
    have = read_state(out).init_from_merge or {}
    want = {"run": str(init.from_merge), "branch": init.branch, "method": init.method, "every": init.every,
            "optimizer_state": init.optimizer_state}
    diff = [k for k, v in want.items() if have.get(k) != v]
    if diff or len(have.get("checkpoints", [])) != init.last:
        key = diff[0] if diff else "last"
        raise ConfigError(f"init.{key}: {out} was merged with {have.get(key, len(have.get('checkpoints', [])))!r}, "
                          f"the config asks for {want.get(key, init.last)!r}; start a new run to change the merge")
    return out
