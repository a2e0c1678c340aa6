"""riverbed: make the trajectory of LLM pre-training useful.

One constant-LR main branch (WSD), short decay branches forked from any checkpoint,
WSD-S, checkpoint averaging (PMA) and scaling laws fitted from the branch endpoints.
"""

from __future__ import annotations

import importlib

from riverbed.errors import RiverbedError
from riverbed.extras import missing_extra
from riverbed.version import __version__

__all__ = [
    "RiverbedError", "Run", "train_run", "fork_branches", "merge", "build_report", "init_from_merge", "__version__", "merge_state_dicts", "merge_sweep",
    "WSD", "WarmupStable", "DecayBranch", "schedule_from_spec", "schedule_to_spec", "plan_budgets",
    "RunConfig", "load_config", "train_branch", "BranchResult", "save_checkpoint", "load_checkpoint",
    "ModelConfig", "build_model", "DataConfig", "load_dataset",
    "GuardConfig", "InitConfig", "SpikeDetector", "SpikeGuard",
    "fit_law", "load_points", "frontier", "predict",
]

# Public names exported lazily (name -> module), so `import riverbed` stays light.
_LAZY: dict[str, str] = {
    "Run": "riverbed.runs",
    "fork_branches": "riverbed.executors.branches",
    "train_run": "riverbed.orchestration.train",
    "init_from_merge": "riverbed.orchestration.init_from_merge",
    "build_report": "riverbed.reports.build",
    "merge": "riverbed.merging",
    "merge_state_dicts": "riverbed.merging",
    "merge_sweep": "riverbed.training.merge_sweep",
    "WSD": "riverbed.schedules",
    "WarmupStable": "riverbed.schedules",
    "DecayBranch": "riverbed.schedules",
    "schedule_from_spec": "riverbed.schedules",
    "schedule_to_spec": "riverbed.schedules",
    "plan_budgets": "riverbed.schedules.budget_plan",
    "RunConfig": "riverbed.config",
    "load_config": "riverbed.config",
    "train_branch": "riverbed.training",
    "BranchResult": "riverbed.training",
    "save_checkpoint": "riverbed.checkpoints.state",
    "load_checkpoint": "riverbed.training.distributed_checkpoint",
    "ModelConfig": "riverbed.model",
    "build_model": "riverbed.model",
    "DataConfig": "riverbed.data",
    "load_dataset": "riverbed.data",
    "GuardConfig": "riverbed.config.guard",
    "InitConfig": "riverbed.config.init",
    "SpikeDetector": "riverbed.training.spike_detector",
    "SpikeGuard": "riverbed.training.spike_guard",
    "fit_law": "riverbed.scaling",
    "load_points": "riverbed.scaling",
    "frontier": "riverbed.scaling",
}


# Subpackages that share a name with nothing else: `riverbed.predict` is always the package (the
# scaling-law prediction is `riverbed.scaling.predict`), whether or not it was imported before.
_SUBPACKAGES = frozenset({"predict"})


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"riverbed.{name}")
    if name in _LAZY:
        try:  # subpackages may be lazy themselves: the getattr can import too
            return getattr(importlib.import_module(_LAZY[name]), name)
        except ModuleNotFoundError as exc:  # e.g. riverbed.train_branch without the `train` extra

            err = missing_extra(exc, f"riverbed.{name}")
            if err is None:
                raise
            raise err from exc
    raise AttributeError(f"module 'riverbed' has no attribute {name!r}")
