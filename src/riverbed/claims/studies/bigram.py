"""The river-valley lab's checks on the bigram language (``riverbed.experiments.bigram``'s setup).

Per seed: the bigram experiment's tiny dense model and data (64 tokens, half the contexts
deterministic, the rest up to 16 successors) train a constant-LR main branch with checkpoints every
``ckpt`` steps; a linear decay to 0 over ``decay`` steps forks from main at ``steps``, and main goes
on at the constant LR to ``steps + decay``: the control at equal tokens (as in the lr-sweep
experiment). Measured, with the one evaluator (riverbed.training.evaluate.HeldoutEvaluator):

* per entropy bucket (deterministic / low / mid / high), the decay's held-out loss drop against the
  control at the same tokens; the claim's number is the high bucket's drop minus the largest other
  bucket's (the drop against the fork, 40-80 steps earlier, is kept in the extras);
* the loss along the straight line between the mid-run and the last stable checkpoint (11 points):
  min(both ends) minus the lowest interior point (positive: an interior minimum below both ends);
* the loss along the line from the last stable checkpoint toward the decayed one: its largest rise
  between consecutive points (negative: it falls monotonically).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from riverbed.experiments import small

POINTS = 11
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"steps": 40, "ckpt": 20, "decay": 10},
    "quick": {"steps": 200, "ckpt": 50, "decay": 40},
    "full": {"steps": 400, "ckpt": 50, "decay": 80},
}


def measure(size: str, seed: int, root: Path, model: str = "tiny") -> dict[str, Any]:
    from riverbed.checkpoints import layout
    from riverbed.data import load_dataset
    from riverbed.experiments import bigram as exp
    from riverbed.landscape import interpolate, open_checkpoints
    from riverbed.training.evaluate import optimal_loss

    g = SIZES[size]
    steps, end = g["steps"], g["steps"] + g["decay"]
    cfg = exp.config(seed, end, g["ckpt"], g["ckpt"], exp.LR)
    data = load_dataset(cfg.data)
    # main to the decay's end (the control), with a checkpoint at the fork
    run = small.train_root(cfg, root / "bigram", end, data, extra_stops=(steps,))
    decayed = small.fork_decay(run, cfg, data, steps, "linear", g["decay"])
    ev = small.evaluator(cfg, data)
    fork, control, dec = (ev.stats(p, str(p)) for p in (small.checkpoint(run, steps), small.checkpoint(run, end), decayed))
    drop = {b: control.buckets[b] - dec.buckets[b] for b in dec.buckets if dec.buckets[b] is not None
            and control.buckets[b] is not None}
    drop_fork = {b: fork.buckets[b] - dec.buckets[b] for b in drop if fork.buckets[b] is not None}
    mains = [r for r in layout.list_checkpoints(run.path, layout.MAIN) if 0 < r.step <= steps]
    mid = mains[len(mains) // 2 - 1]
    setup, (a, f, d) = open_checkpoints([mid.path, mains[-1].path, decayed], data=data)
    stable = interpolate(setup.objective, a, f, points=POINTS).losses
    toward = interpolate(setup.objective, f, d, points=POINTS).losses
    others = [v for b, v in drop.items() if b != "high"]
    return {"values": {"decay-lowers-high-entropy": drop["high"] - max(others),
                       "stable-line-interior-min": min(stable[0], stable[-1]) - min(stable[1:-1]),
                       "decay-line-monotone": max(b - a for a, b in zip(toward, toward[1:]))},
            "extras": {"bucket_drop_vs_control": drop, "bucket_drop_vs_fork": drop_fork, "stable_line": list(stable),
                       "toward_decay_line": list(toward), "stable_from_step": mid.step, "fork_loss": fork.loss,
                       "control_loss": control.loss, "decayed_loss": dec.loss,
                       "optimal_loss": optimal_loss(data.language, ev.batches)}}
