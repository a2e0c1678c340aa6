"""Schedule-free AdamW against WSD over the multi-budget study's budgets (Defazio et al. 2024).

"The Road Less Scheduled" (Defazio et al. 2024, arXiv 2405.15682) reports that schedule-free AdamW
matches or beats cosine and linear-decay schedules tuned to the run's length, without knowing the
length, and that its iterate is good at any time. Here, per seed, at the budgets B_1 < ... < B_K of
the multi-budget study (``riverbed.claims.studies.multibudget.SIZES``; the tiny 103K-parameter model
on the embedded corpus):

* **WSD**, for each LR of ``LRS``: one AdamW main branch at a constant LR (warmup ``WARMUP``) with a
  short decay branch per budget (linear to 0.1 x peak over the last 10 % of it, ending at B_k: equal
  tokens); its undecayed main branch at B_k is the anytime reference;
* **schedule-free AdamW** (``optim.name = "schedulefree-adamw"``), for each LR of ``LRS``: one run
  with the same warmup and no decay, its (eval-mode) weights checkpointed at every B_k.

Each method's LR is tuned per seed on the grid ``LRS`` = 3e-4, 1e-3, 3e-3, 1e-2 (the same grid for both;
3e-2 was never the best of either in a wider trial):
the LR with the lowest held-out loss at the largest budget, separately for WSD's decayed models, WSD's
main branch and schedule-free (tuned on the same held-out set the claims are measured on, for every
method alike); a tuned LR at an end of the grid is listed in the extras (``grid_edge``). Measured, from the one evaluator on 1,024 held-out windows with each difference's
sampling error:

* ``wsd-matches-schedulefree``: schedule-free loss minus WSD decayed loss, mean over budgets (nats;
  holds if WSD is better or within 0.01);
* ``schedulefree-beats-wsd-main``: the smallest over budgets of WSD main-branch loss minus
  schedule-free loss (nats; > 0: schedule-free's iterate beats the undecayed main at every budget).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from riverbed.claims.studies import multibudget
from riverbed.experiments import small

LRS = (3e-4, 1e-3, 3e-3, 1e-2)
WARMUP, DECAY_FRACTION, MIN_RATIO = 10, 0.1, 0.1
EVAL_WINDOWS = {"tiny": 64, "quick": 1024, "full": 1024}


def _decay(budget: int) -> int:
    return max(1, round(DECAY_FRACTION * budget))


def _se(w: Any) -> float:
    return float(w.std(unbiased=True) / len(w) ** 0.5)


def measure(size: str, seed: int, root: Path, model: str = "tiny") -> dict[str, Any]:
    from riverbed.config import OptimConfig
    from riverbed.data import DataConfig, load_dataset

    g = multibudget.SIZES[size]
    budgets = tuple(g["budgets"])
    warmup = min(WARMUP, (budgets[0] - _decay(budgets[0])) // 2)
    windows = EVAL_WINDOWS[size]
    data = load_dataset(DataConfig())
    forks = tuple(b - _decay(b) for b in budgets)

    def config(lr: float, name: str) -> Any:
        batch = min(64, windows)
        return small.small_config(seed, lr, {"type": "warmup-stable", "warmup": warmup},
                                  optim=OptimConfig(lr=lr, name=name), batch_size=g["batch"], seq_len=g["seq"],
                                  ckpt_every=0, eval_batches=windows // batch, eval_batch_size=batch)

    ev = small.evaluator(config(LRS[0], "adamw"), data)  # the held-out set: the same for every run
    wsd: dict[float, dict[str, list[Any]]] = {}
    sf: dict[float, list[Any]] = {}
    for lr in LRS:
        cfg = config(lr, "adamw")
        run = small.train_root(cfg, root / f"wsd-{lr:g}", budgets[-1], data, extra_stops=tuple(sorted({*forks, *budgets})))
        decayed = [small.fork_decay(run, cfg, data, f, "linear", _decay(b), MIN_RATIO) for f, b in zip(forks, budgets)]
        wsd[lr] = {"decayed": [ev.window_losses(p, "WSD decayed") for p in decayed],
                   "main": [ev.window_losses(small.checkpoint(run, b), "WSD main") for b in budgets]}
        cfg = config(lr, "schedulefree-adamw")
        run = small.train_root(cfg, root / f"sf-{lr:g}", budgets[-1], data, extra_stops=budgets[:-1])
        sf[lr] = [ev.window_losses(small.checkpoint(run, b), "schedule-free") for b in budgets]

    def best(curves: dict[float, list[Any]]) -> float:
        return min(curves, key=lambda lr: float(curves[lr][-1].mean()))

    lr_dec, lr_main, lr_sf = best({lr: w["decayed"] for lr, w in wsd.items()}), \
        best({lr: w["main"] for lr, w in wsd.items()}), best(sf)
    tuned = {"wsd_decayed": lr_dec, "wsd_main": lr_main, "schedulefree": lr_sf}
    dec, main, free = wsd[lr_dec]["decayed"], wsd[lr_main]["main"], sf[lr_sf]
    k = len(budgets)
    match = sum(f - d for f, d in zip(free, dec)) / k  # per-window, averaged over budgets
    beats = [m - f for m, f in zip(main, free)]
    worst = min(range(k), key=lambda i: float(beats[i].mean()))
    loss = {"wsd_decayed": {f"{lr:g}": [float(w.mean()) for w in c["decayed"]] for lr, c in wsd.items()},
            "wsd_main": {f"{lr:g}": [float(w.mean()) for w in c["main"]] for lr, c in wsd.items()},
            "schedulefree": {f"{lr:g}": [float(w.mean()) for w in c] for lr, c in sf.items()}}
    return {"values": {"wsd-matches-schedulefree": float(match.mean()),
                       "schedulefree-beats-wsd-main": float(beats[worst].mean())},
            "sampling": {"wsd-matches-schedulefree": _se(match), "schedulefree-beats-wsd-main": _se(beats[worst])},
            "extras": {"budgets": list(budgets), "lr_grid": list(LRS), "tuned_lr": tuned, "loss": loss,
                       "grid_edge": sorted(m for m, lr in tuned.items() if lr in (LRS[0], LRS[-1])),
                       "heldout_tokens": ev.tokens}}
