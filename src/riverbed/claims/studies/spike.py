"""PMA-init passes a loss spike: the spike experiment's design (``riverbed.experiments.spike``), bounded.

Per seed, three arms of the spike experiment's tiny MoE (8 experts, top-2, no gradient clipping),
same data order: ``reference`` (no spike), ``none`` (a 10x LR blip, no guard) and ``pma-init`` (the
spike guard resumes from the SMA of the 3 newest healthy checkpoints). Its measured gap: final
training loss (mean of the last 20 steps) minus the reference run's at the same step. An arm that
was stopped before the last step (the guard's max_recoveries) counts as ``STOPPED_GAP`` nats off.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from riverbed.experiments import spike

STOPPED_GAP = 1.0
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"steps": 70, "jump": 45},
    "quick": {"steps": spike.BOUNDED["steps"], "jump": spike.BOUNDED["jump"]},
    "full": {"steps": spike.STEPS, "jump": spike.JUMP},
}
ARMS = ("reference", "none", "pma-init")


def _gap(r: dict[str, Any]) -> float:
    g = r.get("gap")
    if not r["passed"] or g is None or not math.isfinite(g):
        return STOPPED_GAP
    return float(g)


def measure(size: str, seed: int, root: Path, model: str = "tiny") -> dict[str, Any]:
    from riverbed.data import load_dataset

    geom = SIZES[size]
    setup = spike.Setup(jump=geom["jump"])
    data = load_dataset(setup.config(seed, geom["steps"], "none").data)
    results = [spike.run_arm(root, seed, geom["steps"], setup, arm, data, progress=False) for arm in ARMS]
    spike.compare_to_reference(results)
    by = {r["arm"]: r for r in results}
    keep = ("spike_step", "passed", "returned", "gap", "back_at", "recoveries", "final_loss")
    return {"values": {"pma-init-passes-spike": _gap(by["pma-init"]), "spike-hurts-unguarded": _gap(by["none"])},
            "extras": {arm: {k: by[arm][k] for k in keep} for arm in ARMS} | {"tol": spike.TOL, **geom}}
