"""A data law fitted from WSD branch ends matches one from independent cosine runs, at about half the compute.

Per seed, the scaling experiment's pieces (``riverbed.experiments.scaling``, smallest size "s", LR
3e-3): one WSD main branch forked into a 1-sqrt decay over the last 20 % of each of four budgets,
and one independent cosine run (to the same min-LR ratio) per budget. The data law
L(D) = E + B/D^beta is fitted (``riverbed.scaling.fit_law``) on each set of four finished models;
measured: the largest relative difference of the two fitted laws over the budgets' token range
(64 log-spaced points). The extras give both studies' token costs (the WSD tree pays for main up to
the last fork plus the decays; cosine pays every budget from scratch) and their ratio.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

SIZE = "s"
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"forks": (8, 16, 24, 32), "batch": 4, "seq": 32, "eval_batches": 1, "bootstrap": 0},
    "quick": {"forks": (20, 40, 80, 160), "batch": 8, "seq": 32, "eval_batches": 4, "bootstrap": 0},
    "full": {"forks": (50, 100, 200, 400), "batch": 8, "seq": 32, "eval_batches": 4, "bootstrap": 0},
}


def measure(size: str, seed: int, root: Path, model: str = "tiny") -> dict[str, Any]:
    import numpy as np

    from riverbed.data import load_dataset
    from riverbed.experiments import scaling as exp
    from riverbed.scaling import fit_law, get_law, load_run
    from riverbed.scaling.points import concat

    geom = dict(SIZES[size])
    data = load_dataset(exp.config(SIZE, {"type": "constant"}, geom, seed).data)
    tree = exp.wsd_tree(root, SIZE, geom, seed, data, progress=False)
    wsd = load_run(tree, kinds=("decay",))
    steps = sorted(int(round(d / (geom["batch"] * geom["seq"]))) for d in wsd.d)
    cos = concat([load_run(p, kinds=("cosine", "main"))
                  for p in exp.cosine_runs(root, SIZE, steps, geom, seed, data, progress=False)])
    with warnings.catch_warnings(record=True) as caught:  # 4 points, 3 parameters: said once, in the extras
        warnings.simplefilter("always")
        f_wsd, f_cos = fit_law(wsd, "data"), fit_law(cos, "data")
    law = get_law("data")
    grid = np.geomspace(float(wsd.d.min()), float(wsd.d.max()), 64)
    a = law.predict(np.asarray(f_wsd.theta), None, grid)
    b = law.predict(np.asarray(f_cos.theta), None, grid)
    tree_tokens, cos_tokens = exp._tree_tokens(tree), float(np.sum(cos.d))
    order_w, order_c = np.argsort(wsd.d), np.argsort(cos.d)
    return {"values": {"branch-law-matches": float(np.max(np.abs(a - b) / b))},
            "extras": {"budget_steps": steps, "wsd_loss": wsd.loss[order_w].tolist(),
                       "cosine_loss": cos.loss[order_c].tolist(),
                       "wsd_fit": dict(f_wsd.params), "cosine_fit": dict(f_cos.params), "wsd_tokens": tree_tokens,
                       "cosine_tokens": cos_tokens, "compute_ratio": tree_tokens / cos_tokens,
                       "fit_warnings": sorted({str(w.message) for w in caught})}}
