"""The law-optimised schedule against cosine and the best WSD, trained at equal steps.

Per seed, :func:`riverbed.experiments.optimal_schedule.one_seed` (``riverbed experiment
optimal-schedule``'s per-seed work): the default law fitted on a constant-LR main branch and one
1-sqrt decay, the free-form schedule that minimises its predicted final loss, and that schedule,
cosine and WSD (linear and 1-sqrt at their best decay fraction under the law) trained to the same
step. Measured: the final held-out loss of cosine, and of the better WSD, minus the optimised one's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def measure(size: str, seed: int, root: Path, model: str = "tiny") -> dict[str, Any]:
    from riverbed.data import DataConfig, load_dataset
    from riverbed.experiments.optimal_schedule import one_seed
    from riverbed.predict.laws import DEFAULT_LAW

    r = one_seed(root, seed, size, DEFAULT_LAW, load_dataset(DataConfig()))
    m = r["measured"]
    return {"values": {"optimal-beats-cosine": m["cosine"] - m["optimized"],
                       "optimal-beats-wsd": min(m["wsd-linear"], m["wsd-1-sqrt"]) - m["optimized"]},
            "extras": {k: v for k, v in r.items() if k != "optimized_lr"}}
