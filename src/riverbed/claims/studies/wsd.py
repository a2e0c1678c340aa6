"""The WSD study: one seed's small runs, built by the decay-vs-merge experiment, and six claims.

Per seed (the tiny 103K-parameter model on the embedded corpus, 256 tokens per step), with
``riverbed.experiments.decay_vs_merge`` (:func:`train_tree` and :func:`measure_forks`):

* ``hi``: a WSD main branch at the peak LR for ``steps`` steps (checkpoints every ``ckpt``) with
  1-sqrt decay branches of ``decay`` steps forked at mid-run and at ``steps - decay`` (the last one
  ends at ``steps``, the same tokens as the main branch's end), the SMA / EMA / WMA merges of main's
  checkpoints over each decay's window, and a linear decay branch from the same last fork;
* ``lo``: the same main branch and last 1-sqrt decay at ``lr_ratio`` times the peak LR;
* ``cos``: a cosine run of ``steps`` steps (warmup, then cosine to ``min_ratio``) at the peak LR.

Every held-out loss comes from the one evaluator (riverbed.training.evaluate.HeldoutEvaluator) on
a held-out set of ``eval_windows`` windows (32,768 tokens at the quick and full sizes), the same
for every model of the seed: each claim's number is a difference of two models on the same
windows, so its sampling error is the standard error of the per-window differences, which the
study reports per claim (``sampling``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from riverbed.config import RunConfig
from riverbed.experiments import decay_vs_merge as dvm
from riverbed.experiments import small


@dataclass(frozen=True)
class StudySpec:
    """Size and length of the per-seed study."""

    steps: int
    """Main-branch (and cosine-run) length in steps."""
    decay: int
    """Decay-branch length in steps (the last ``decay`` steps of the budget)."""
    ckpt: int
    """Checkpoint cadence of the main branch (the merges average these over the decay window)."""
    lr: float = 1e-2
    lr_ratio: float = 0.33
    warmup: int = 10
    min_ratio: float = 0.1
    batch_size: int = 8
    seq_len: int = 32
    eval_windows: int = 1024
    """Held-out windows of ``seq_len`` tokens (the evaluation's batch is 64 of them)."""
    model: str = "tiny"
    """Model preset (riverbed.model.PRESETS)."""

    @property
    def forks(self) -> tuple[int, int]:
        """The mid-run fork (its decay ends at mid-run) and the last fork (its decay ends at ``steps``)."""
        mid = self.steps // 2 - (self.steps // 2) % self.ckpt
        return (mid - self.decay, self.steps - self.decay)


SIZES = {
    "tiny": StudySpec(steps=40, decay=10, ckpt=5, eval_windows=64),
    "quick": StudySpec(steps=200, decay=40, ckpt=10),
    "full": StudySpec(steps=400, decay=80, ckpt=20),
}
SHAPE = "1-sqrt"


def config(spec: StudySpec, seed: int, lr: float, schedule: dict[str, Any]) -> RunConfig:
    from riverbed.model import ModelConfig

    batch = min(64, spec.eval_windows)
    return small.small_config(seed, lr, schedule, model=ModelConfig.preset(spec.model, max_seq_len=max(64, spec.seq_len)),
                              batch_size=spec.batch_size, seq_len=spec.seq_len, ckpt_every=spec.ckpt,
                              eval_batches=spec.eval_windows // batch, eval_batch_size=batch)


def _se(w: Any) -> float:
    """Standard error of the mean of per-window values."""
    return float(w.std(unbiased=True) / len(w) ** 0.5)


def measure_spec(spec: StudySpec, seed: int, root: Path, data: Any) -> dict[str, Any]:
    """Every claim's measurement for one seed of ``spec``, with each one's held-out sampling error."""
    stable = {"type": "warmup-stable", "warmup": spec.warmup}
    mid_fork, fork = spec.forks
    hi_cfg = config(spec, seed, spec.lr, stable)
    hi = dvm.train_tree(root / "hi", hi_cfg, spec.forks, spec.decay, SHAPE, data)
    w: dict[tuple[int, str], Any] = {}
    hi_rows = {r["fork"]: r for r in dvm.measure_forks(hi, hi_cfg, data, spec.forks, spec.decay, SHAPE, windows=w,
                                                        emulated=False)}
    lo_cfg = config(spec, seed, spec.lr * spec.lr_ratio, stable)
    lo = dvm.train_tree(root / "lo", lo_cfg, (fork,), spec.decay, SHAPE, data)
    lo_w: dict[tuple[int, str], Any] = {}
    (lo_row,) = dvm.measure_forks(lo, lo_cfg, data, (fork,), spec.decay, SHAPE, windows=lo_w, emulated=False)
    ev = small.evaluator(hi_cfg, data)
    w_lin = ev.window_losses(small.fork_decay(hi, hi_cfg, data, fork, "linear", spec.decay), "linear decay")
    cos_cfg = config(spec, seed, spec.lr, {"type": "cosine", "steps": spec.steps, "warmup": spec.warmup,
                                          "min_ratio": spec.min_ratio})
    cos = small.train_root(cos_cfg, root / "cos", spec.steps, data)
    w_cos = ev.window_losses(small.checkpoint(cos, spec.steps), "cosine run")

    end, mid = hi_rows[fork], hi_rows[mid_fork]
    main, sma, dec = w[(fork, "main")], w[(fork, "sma")], w[(fork, "decay")]
    lo_drop = lo_w[(fork, "main")] - lo_w[(fork, "decay")]
    merges = ("sma", "ema", "wma")
    spread = max(end[m] for m in merges) - min(end[m] for m in merges)
    spread_mid = max(mid[m] for m in merges) - min(mid[m] for m in merges)
    diffs = {  # per-window differences whose means are the claims' numbers (sampling errors below)
        "pma-beats-last": main - sma,
        # a difference, defined for every seed: the merge's gain over the last checkpoint minus half the
        # decay's gain (> 0 exactly when the merge closes more than half of a positive gap)
        "merge-approximates-decay": (main - sma) - 0.5 * (main - dec),
        "wsd-vs-cosine": w_cos - dec,
        "1sqrt-vs-linear": w_lin - dec,
        "drop-grows-with-lr": (main - dec) - lo_drop,
        "drop-grows-with-lr/decay-helps": lo_drop,
    }
    values = {k: float(v.mean()) for k, v in diffs.items()}
    values["merges-converge-late"] = spread_mid - spread
    gap = end["main"] - end["decay"]
    extras = {"main_loss": end["main"], "decayed": {SHAPE: end["decay"], "linear": float(w_lin.mean())},
              "low_lr_main": lo_row["main"], "low_lr_decayed": lo_row["decay"], "cosine": float(w_cos.mean()),
              "merges_end": {m: end[m] for m in merges}, "merges_mid": {m: mid[m] for m in merges},
              "mid_step": mid["end"], "merge_window": end["window"],
              "gap_closed_ratio": (end["main"] - end["sma"]) / gap if gap > 0 else None,
              "heldout": {"windows": int(len(main)), "tokens": ev.tokens, "loss_se": _se(main)}}
    return {"values": values, "extras": extras, "sampling": {k: _se(v) for k, v in diffs.items()}}


def measure(size: str, seed: int, root: Path, model: str = "tiny") -> dict[str, Any]:
    from dataclasses import replace

    from riverbed.data import DataConfig, load_dataset

    return measure_spec(replace(SIZES[size], model=model), seed, root, load_dataset(DataConfig()))
