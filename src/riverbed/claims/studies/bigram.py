"""The river-valley lab's checks on the bigram language (``riverbed.experiments.bigram``'s setup).

Per seed: the bigram experiment's tiny dense model and data (64 tokens, half the contexts
deterministic, the rest up to 16 successors) train a constant-LR main branch with checkpoints every
``ckpt`` steps; a linear decay to 0 over ``decay`` steps forks from its last checkpoint. Measured:

* per entropy bucket (``eval_loss_by_bucket``: deterministic / low / mid / high), the decay's drop
  of held-out loss; the claim's number is the high bucket's drop minus the largest other bucket's;
* the loss along the straight line between the mid-run and the last stable checkpoint (11 points):
  min(both ends) minus the lowest interior point (positive: an interior minimum below both ends);
* the loss along the line from the last stable checkpoint toward the decayed one: its largest rise
  between consecutive points (negative: it falls monotonically).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from riverbed.claims import tiny

POINTS = 11
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"steps": 40, "ckpt": 20, "decay": 10},
    "quick": {"steps": 200, "ckpt": 50, "decay": 40},
    "full": {"steps": 400, "ckpt": 50, "decay": 80},
}


def measure(size: str, seed: int, root: Path) -> dict[str, Any]:
    from riverbed.checkpoints import layout
    from riverbed.data import load_dataset
    from riverbed.experiments import bigram as exp
    from riverbed.landscape import interpolate, open_checkpoints
    from riverbed.runs.fork import plan_requests
    from riverbed.orchestration.fork import run_requests
    from riverbed.training import read_metrics

    g = SIZES[size]
    steps = g["steps"]
    cfg = exp.config(seed, steps, g["ckpt"], g["ckpt"], exp.LR)
    data = load_dataset(cfg.data)
    run = tiny.train_root(cfg, root / "bigram", steps, data)
    (rec,) = run_requests(run, plan_requests(run, [steps], "linear", g["decay"]), cfg=cfg, data=data, progress=False)

    def last_eval(branch: str, step: int) -> dict[str, Any]:
        rows = read_metrics(layout.metrics_path(run.path, branch))
        return [r for r in rows if r.get("kind") == "eval" and r["step"] == step][-1]

    fork, end = last_eval(layout.MAIN, steps), last_eval(rec.name, steps + g["decay"])
    drop = {b: fork["eval_loss_by_bucket"][b] - end["eval_loss_by_bucket"][b] for b in fork["eval_loss_by_bucket"]}
    mains = [r for r in layout.list_checkpoints(run.path, layout.MAIN) if r.step > 0]
    mid = mains[len(mains) // 2 - 1]
    setup, (a, f, d) = open_checkpoints([mid.path, mains[-1].path, layout.list_checkpoints(run.path, rec.name)[-1].path],
                                        data=data)
    stable = interpolate(setup.objective, a, f, points=POINTS).losses
    toward = interpolate(setup.objective, f, d, points=POINTS).losses
    others = [v for b, v in drop.items() if b != "high"]
    return {"values": {"decay-lowers-high-entropy": drop["high"] - max(others),
                       "stable-line-interior-min": min(stable[0], stable[-1]) - min(stable[1:-1]),
                       "decay-line-monotone": max(b - a for a, b in zip(toward, toward[1:]))},
            "extras": {"bucket_drop": drop, "stable_line": list(stable), "toward_decay_line": list(toward),
                       "stable_from_step": mid.step, "fork_loss": fork["eval_loss"], "decayed_loss": end["eval_loss"],
                       "optimal_loss": end.get("eval_optimal_loss")}}
