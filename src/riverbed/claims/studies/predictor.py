"""The trajectory predictor's check: leave-one-out MPL vs the undecayed main branch and a PMA merge.

Per seed, a tiny WSD run tree (peak LR 6e-3, warmup 10, main evaluated every 10 steps, checkpoints
every 25; "full" is modelled on the README's ``riverbed predict check`` example) with four decay
branches (1-sqrt and linear, about 25 % of their budgets, ending at or before main's last step), then
:func:`riverbed.predict.check.loo_check` with the Multi-Power Law: each branch's final held-out loss
is predicted by a fit on the main branch and the three other branches, beside two baselines (main's
held-out loss at the same step; the SMA of the last 4 main checkpoints up to the branch's end). Measured: mean relative errors over the four branches, in percent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from riverbed.experiments import small

WARMUP = 10
SIZES: dict[str, dict[str, Any]] = {
    # branches: (fork step, shape, length); "full" is the README's `riverbed predict check` tree
    "tiny": {"steps": 40, "eval": 5, "ckpt": 5, "eval_batches": 1, "batch": 8, "seq": 32, "lr": 1e-2,
             "branches": ((10, "1-sqrt", 5), (20, "linear", 5), (25, "1-sqrt", 10), (30, "1-sqrt", 10))},
    "quick": {"steps": 300, "eval": 10, "ckpt": 25, "eval_batches": 4, "batch": 8, "seq": 32, "lr": 6e-3,
              "branches": ((75, "1-sqrt", 25), (150, "1-sqrt", 50), (200, "linear", 75), (225, "1-sqrt", 75))},
    "full": {"steps": 600, "eval": 10, "ckpt": 25, "eval_batches": 4, "batch": 16, "seq": 64, "lr": 6e-3,
             "branches": ((150, "1-sqrt", 50), (300, "1-sqrt", 100), (400, "linear", 150), (450, "1-sqrt", 150))},
}

def measure(size: str, seed: int, root: Path, model: str = "tiny") -> dict[str, Any]:
    from riverbed.data import DataConfig, load_dataset
    from riverbed.predict.check import loo_check
    from riverbed.runs.fork import plan_requests
    from riverbed.orchestration.fork import run_requests

    geom = SIZES[size]
    data = load_dataset(DataConfig())
    cfg = small.small_config(seed, geom["lr"], {"type": "warmup-stable", "warmup": WARMUP}, batch_size=geom["batch"],
                              seq_len=geom["seq"], ckpt_every=geom["ckpt"], eval_every=geom["eval"],
                              eval_batches=geom["eval_batches"])
    run = small.train_root(cfg, root / "tree", geom["steps"], data)
    for fork, shape, length in geom["branches"]:
        run_requests(run, plan_requests(run, [fork], shape, length), cfg=cfg, data=data, progress=False,
                     eval_every=geom["eval"])
    # force: the claim measures the law's errors even on folds whose fit is unreliable; the verdict says so.
    report = loo_check(run.path, laws=("mpl",), merge=True, merge_last=4, force=True)
    s = report.summary()
    pct = {m: 100.0 * float(s[m]["mean_rel_error"]) for m in ("mpl", "main", "merge")}
    return {"values": {"mpl-accurate": pct["mpl"], "mpl-beats-main": pct["main"] - pct["mpl"],
                       "mpl-beats-merge": pct["merge"] - pct["mpl"]},
            "extras": {"mean_rel_error_pct": pct, "branches": [b.to_dict() for b in report.branches],
                       "verdict": report.verdict()["statement"]}}
