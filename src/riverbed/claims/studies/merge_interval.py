"""The best merge interval V grows with model size: the merge-interval experiment's design
(``riverbed.experiments.merge_interval``), one seed.

Per size a constant-LR main branch; at its end the SMA of the last N checkpoints for each V of the
grid (``riverbed merge-sweep``); the best V is the one of lowest held-out loss. The measured
number: the slope of log2(best V) against log10(parameters) over the sizes (> 0: V grows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from riverbed.experiments import merge_interval as mi

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"sizes": mi.QUICK["sizes"], "steps": 100, "every": mi.QUICK["every"]},
    "quick": {"sizes": mi.QUICK["sizes"], "steps": mi.QUICK["steps"], "every": mi.QUICK["every"]},
    "full": {"sizes": mi.FULL["sizes"], "steps": mi.FULL["steps"], "every": mi.FULL["every"]},
}


def measure(size: str, seed: int, root: Path, model: str = "tiny") -> dict[str, Any]:
    """``model`` is unused: the study spans its own model sizes (``SIZES``)."""
    from riverbed.data import DataConfig, load_dataset

    geom = SIZES[size]
    data = load_dataset(DataConfig())
    rows = [mi.one_run(root, s, seed, geom["steps"], geom["every"], data) for s in geom["sizes"]]
    return {"values": {"merge-interval-grows": mi.trend(rows)},
            "extras": {"best_V": {r["size"]: r["best_V"] for r in rows}, "params": {r["size"]: r["params"] for r in rows},
                       "steps": geom["steps"], "every": list(geom["every"])}}
