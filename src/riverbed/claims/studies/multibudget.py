"""WSD-S vs WSD vs cyclic cosine at equal compute: one seed of the multi-budget experiment.

Per seed, ``riverbed.experiments.multi_budget.one_seed`` on the embedded corpus (its LR, warmup and
decays: linear over the last 10 % of each budget, to 0.1 x peak) for the budgets T_1 < ... < T_K
of the size, without the cosine reference (which costs more compute by design):

* **WSD tree**: a main branch with one decay branch per budget, forked so that main up to the fork
  plus all decays so far cost exactly T_k steps;
* **WSD-S**: one run (``type = "wsds"``) that decays before each T_k and resumes at the peak;
* **cyclic cosine**: one run (``type = "cyclic-cosine"``) whose cycles end at the T_k.

Measured: the mean over budgets of (WSD loss - WSD-S loss) and of (cyclic loss - WSD-S loss) at
equal compute, held-out (the trainer's evaluation of each finished model), in nats (positive:
WSD-S is better).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from riverbed.experiments import multi_budget as exp

DATA = "corpus"
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"budgets": (20, 40), "warmup": 5, "batch": 4, "seq": 32, "eval_batches": 1, "eval_every": 20},
    "quick": {"budgets": (50, 100, 200), "warmup": 10, "batch": 8, "seq": 32, "eval_batches": 8, "eval_every": 50},
    "full": {"budgets": (100, 200, 400), "warmup": 10, "batch": 8, "seq": 32, "eval_batches": 8, "eval_every": 100},
}
METHODS = ("wsd", "wsds", "cyclic")


def measure(size: str, seed: int, root: Path, model: str = "tiny") -> dict[str, Any]:
    from riverbed.data import load_dataset
    from riverbed.errors import RunError

    g = SIZES[size]
    geom = {k: g[k] for k in ("batch", "seq", "eval_batches", "eval_every")}
    p = exp.plan(g["budgets"], exp.DECAY_FRACTION, g["warmup"])
    ds = load_dataset(exp.config(DATA, {"type": "constant"}, geom, seed, None).data)
    res = exp.one_seed(root, DATA, p, geom, seed, ds, progress=False, methods=METHODS)
    loss = {m: [pt["loss"] for pt in res[m]["points"]] for m in METHODS}
    spent = {m: [pt["spent_tokens"] for pt in res[m]["points"]] for m in METHODS}
    if not spent["wsd"] == spent["wsds"] == spent["cyclic"]:
        raise RunError(f"multi-budget plan: unequal compute {spent}")  # the experiment's invariant
    k = len(p.budgets)
    return {"values": {"wsds-vs-wsd": sum(w - s for w, s in zip(loss["wsd"], loss["wsds"])) / k,
                       "wsds-vs-cyclic": sum(c - s for c, s in zip(loss["cyclic"], loss["wsds"])) / k},
            "extras": {"budgets": list(p.budgets), "decays": list(p.decays), "wsd_forks": list(p.forks),
                       "spent_tokens": spent["wsds"], "lr": exp.DATASETS[DATA][0], **loss}}
