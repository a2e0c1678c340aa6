"""Checkpoint merging (PMA): pure weight vectors, a streaming engine, input formats, a monitor.

>>> from riverbed.merging import ema
>>> [round(w, 3) for w in ema(10, 0.1)][:1]
[0.387]
"""

from __future__ import annotations

import importlib
from typing import Any

from riverbed.merging.weights import decay_weights, ema, explicit, format_weights, sma, weights_for, wma

# Torch-importing parts load on first use so `import riverbed.merging` stays light.
_LAZY = {
    "merge": "riverbed.merging.pipeline",
    "replay": "riverbed.merging.pipeline",
    "MergeRecipe": "riverbed.merging.recipe",
    "load_recipe": "riverbed.merging.recipe",
    "check_merge_output": "riverbed.merging.overwrite",
    "order_inputs": "riverbed.merging.order",
    "MergeResult": "riverbed.merging.engine",
    "merge_state_dicts": "riverbed.merging.memory",
    "select_checkpoints": "riverbed.merging.select",
    "open_input": "riverbed.checkpoints.formats",
    "read_header": "riverbed.checkpoints.formats",
    "PMAConfig": "riverbed.merging.pma_snapshots",
}

__all__ = ["decay_weights", "ema", "explicit", "format_weights", "sma", "weights_for", "wma", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'riverbed.merging' has no attribute {name!r}")
