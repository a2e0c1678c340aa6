"""riverbed.training: the step loop, evaluation, metrics, callbacks, data parallelism (DDP, FSDP2).

>>> from riverbed.training import train_branch, BranchResult, Callback      # doctest: +SKIP

Public names are imported lazily so that ``import riverbed.training.spike_detector`` (pure,
no torch) does not pull in the loop.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "train_branch": "riverbed.training.loop",
    "BranchResult": "riverbed.training.loop",
    "micro_batch_size": "riverbed.training.devices",
    "Callback": "riverbed.training.callbacks",
    "callbacks_from_config": "riverbed.training.setup",
    "train_step": "riverbed.training.step",
    "TrainContext": "riverbed.training.callbacks",
    "RestoreRequest": "riverbed.training.callbacks",
    "evaluate": "riverbed.training.evaluate",
    "evaluate_checkpoints": "riverbed.training.evaluate",
    "MetricsLogger": "riverbed.runs.metrics",
    "read_metrics": "riverbed.runs.metrics",
    "build_optimizer": "riverbed.training.optim",
    "wrap_model": "riverbed.training.parallel",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'riverbed.training' has no attribute {name!r}")
