"""WSD-S vs WSD vs cyclic cosine at equal compute (several budgets from one run).

Per seed, three ways to get finished models for K budgets (tiny model, peak LR 1e-2, warmup 10,
every decay linear to 0.1 x peak; background: WSD-S):

* **WSD tree**: a main branch at the peak LR, forked into a decay branch over the last 10 % of each
  budget ``B_k``; its finished model k has cost (main up to ``B_k - d_k``) + (decays 1..k) steps;
* **WSD-S**: one run (``type = "wsds"``) that decays over the last 10 % of each cumulative budget
  ``T_k`` and resumes at the peak, with ``T_k`` = the WSD tree's cost for budgets 1..k, i.e.
  ``T_k = B_k + d_1 + ... + d_{k-1}``: its checkpoint k lands exactly at the WSD tree's compute;
* **cyclic cosine**: one run (``type = "cyclic-cosine"``) whose cycles end at the same ``T_k``, each
  a full cosine to 0.1 x peak, re-warmed linearly over 10 % of the first budget between cycles.

Measured: the mean over budgets of (WSD loss - WSD-S loss) and of (cyclic loss - WSD-S loss) at
equal compute, held-out, in nats (positive: WSD-S is better).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from riverbed.claims import tiny

LR, WARMUP, MIN_RATIO, DECAY_FRACTION = 1e-2, 10, 0.1, 0.1
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"budgets": (20, 40), "eval_batches": 1},
    "quick": {"budgets": (50, 100, 200), "eval_batches": 4},
    "full": {"budgets": (100, 200, 400), "eval_batches": 4},
}


def _decay(steps: int) -> int:
    return max(1, round(DECAY_FRACTION * steps))


def equal_compute_budgets(budgets: tuple[int, ...]) -> tuple[int, ...]:
    """Cumulative steps of the WSD tree's finished models: T_k = B_k + d_1 + ... + d_{k-1}.

    >>> equal_compute_budgets((100, 200, 400))
    (100, 210, 430)
    """
    out, spent = [], 0
    for b in budgets:
        out.append(b + spent)
        spent += _decay(b)
    return tuple(out)


def measure(size: str, seed: int, root: Path) -> dict[str, Any]:
    from riverbed.data import DataConfig, load_dataset

    geom = SIZES[size]
    data = load_dataset(DataConfig())
    budgets = geom["budgets"]
    cum = equal_compute_budgets(budgets)

    def cfg(schedule: dict[str, Any]) -> Any:
        return tiny.config(seed, LR, schedule, ckpt_every=0, eval_batches=geom["eval_batches"])

    # WSD tree: checkpoints exactly at the fork points (extra stops), one linear decay per budget
    forks = [b - _decay(b) for b in budgets]
    wsd_cfg = cfg({"type": "warmup-stable", "warmup": WARMUP})
    wsd = tiny.train_root(wsd_cfg, root / "wsd", forks[-1], data, extra_stops=tuple(forks[:-1]))
    wsd_loss = [tiny.decay_loss(wsd, wsd_cfg, data, f, "linear", _decay(b), MIN_RATIO) for f, b in zip(forks, budgets)]

    wsds_cfg = cfg({"type": "wsds", "budgets": list(cum), "decays": [_decay(t) for t in cum], "warmup": WARMUP,
                    "shape": "linear", "min_ratio": MIN_RATIO})
    wsds = tiny.train_root(wsds_cfg, root / "wsds", cum[-1], data)
    wsds_loss = [tiny.loss_at(wsds_cfg, data, wsds, t) for t in cum]

    cyc_cfg = cfg({"type": "cyclic-cosine", "budgets": list(cum), "warmup": WARMUP,
                   "rewarmup": _decay(budgets[0]), "min_ratio": MIN_RATIO})
    cyc = tiny.train_root(cyc_cfg, root / "cyclic", cum[-1], data)
    cyc_loss = [tiny.loss_at(cyc_cfg, data, cyc, t) for t in cum]

    k = len(budgets)
    return {"values": {"wsds-vs-wsd": sum(w - s for w, s in zip(wsd_loss, wsds_loss)) / k,
                       "wsds-vs-cyclic": sum(c - s for c, s in zip(cyc_loss, wsds_loss)) / k},
            "extras": {"wsd_budgets": list(budgets), "compute_steps": list(cum), "wsd": wsd_loss, "wsds": wsds_loss,
                       "cyclic": cyc_loss}}
