"""The WSD study: one seed's tiny runs and the six claims measured from them.

Per seed (the tiny 103K-parameter model on the embedded corpus, 256 tokens per step):

* ``hi``: WSD main branch at the peak LR for ``steps`` steps (checkpoints every ``ckpt``), with a
  1-sqrt and a linear decay branch forked at ``steps - decay`` (ending at ``steps``, the same
  tokens as the main branch's end);
* ``lo``: the same at ``lr_ratio`` times the peak LR, with a 1-sqrt decay branch;
* ``cos``: a cosine run of ``steps`` steps (warmup, then cosine to ``min_ratio``) at the peak LR;
* SMA / EMA / WMA merges of ``hi``'s last ``merge_n`` checkpoints, at the end and at mid-run.

All held-out losses are on the run's fixed evaluation batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from riverbed.checkpoints import layout
from riverbed.claims import tiny


@dataclass(frozen=True)
class StudySpec:
    """Size and length of the per-seed study."""

    steps: int
    """Main-branch (and cosine-run) length in steps."""
    decay: int
    """Decay-branch length in steps (the last ``decay`` steps of the budget)."""
    ckpt: int
    """Checkpoint cadence of the main branch (the merges average these)."""
    merge_n: int
    """Checkpoints in each merge."""
    lr: float = 1e-2
    lr_ratio: float = 0.33
    warmup: int = 10
    min_ratio: float = 0.1
    batch_size: int = 8
    seq_len: int = 32
    eval_batches: int = 4


SIZES = {
    "tiny": StudySpec(steps=20, decay=10, ckpt=5, merge_n=2, eval_batches=1),
    "quick": StudySpec(steps=200, decay=40, ckpt=10, merge_n=4),
    "full": StudySpec(steps=400, decay=80, ckpt=20, merge_n=5),
}


def _config(spec: StudySpec, seed: int, lr: float, schedule: dict[str, Any]) -> Any:
    return tiny.config(seed, lr, schedule, batch_size=spec.batch_size, seq_len=spec.seq_len, ckpt_every=spec.ckpt,
                       eval_every=spec.decay, eval_batches=spec.eval_batches)


def _main(spec: StudySpec, root: Path, name: str, seed: int, lr: float, data: Any, schedule: dict[str, Any]) -> Any:
    cfg = _config(spec, seed, lr, schedule)
    return cfg, tiny.train_root(cfg, root / name, spec.steps, data)


def _merge_loss(run: Any, cfg: Any, data: Any, end: int, n: int, method: str, work: Path) -> float:
    from riverbed.experiments.continued_training import checkpoint_eval_loss
    from riverbed.merging import merge

    steps = [s for s in (end - i * cfg.train.ckpt_every for i in range(n)) if s > 0][::-1]
    inputs = [layout.checkpoint_dir(run.path, layout.MAIN, s) for s in steps]
    out = work / f"merge-{method}-{end}"
    merge(out, inputs, method, alpha=0.2 if method == "ema" else None, progress=False, verbose=False, overwrite=True)
    return checkpoint_eval_loss(cfg, data, out)


def measure_spec(spec: StudySpec, seed: int, root: Path, data: Any) -> dict[str, Any]:
    """Every claim's measurement for one seed of ``spec``."""
    stable = {"type": "warmup-stable", "warmup": spec.warmup}
    hi_cfg, hi = _main(spec, root, "hi", seed, spec.lr, data, stable)
    lo_cfg, lo = _main(spec, root, "lo", seed, spec.lr * spec.lr_ratio, data, stable)
    cos_cfg, cos = _main(spec, root, "cos", seed, spec.lr, data,
                         {"type": "cosine", "steps": spec.steps, "warmup": spec.warmup, "min_ratio": spec.min_ratio})
    # Every loss below is checkpoint_eval_loss of a checkpoint directory: one evaluation for all of them.
    hi_main = tiny.loss_at(hi_cfg, data, hi, spec.steps)
    lo_main = tiny.loss_at(lo_cfg, data, lo, spec.steps)
    fork = spec.steps - spec.decay
    hi_dec = {s: tiny.decay_loss(hi, hi_cfg, data, fork, s, spec.decay) for s in ("1-sqrt", "linear")}
    lo_dec = tiny.decay_loss(lo, lo_cfg, data, fork, "1-sqrt", spec.decay)
    cos_end = tiny.loss_at(cos_cfg, data, cos, spec.steps)
    work = root / "merges"
    merged = {m: _merge_loss(hi, hi_cfg, data, spec.steps, spec.merge_n, m, work) for m in ("sma", "ema", "wma")}
    mid = spec.steps // 2 - (spec.steps // 2) % spec.ckpt
    merged_mid = {m: _merge_loss(hi, hi_cfg, data, mid, spec.merge_n, m, work) for m in ("sma", "ema", "wma")}
    gap = hi_main - hi_dec["1-sqrt"]
    spread = max(merged.values()) - min(merged.values())
    spread_mid = max(merged_mid.values()) - min(merged_mid.values())
    values = {
        "pma-beats-last": hi_main - merged["sma"],
        "merge-approximates-decay": (hi_main - merged["sma"]) / gap if gap > 0 else 0.0,
        "wsd-vs-cosine": cos_end - hi_dec["1-sqrt"],
        "1sqrt-vs-linear": hi_dec["linear"] - hi_dec["1-sqrt"],
        "drop-grows-with-lr": gap - (lo_main - lo_dec),
        "merges-converge-late": spread_mid - spread,
    }
    extras = {"main_loss": hi_main, "decayed": hi_dec, "low_lr_main": lo_main, "low_lr_decayed": lo_dec,
              "cosine": cos_end, "merges_end": merged, "merges_mid": merged_mid, "mid_step": mid}
    return {"values": values, "extras": extras}


def measure(size: str, seed: int, root: Path) -> dict[str, Any]:
    from riverbed.data import DataConfig, load_dataset

    return measure_spec(SIZES[size], seed, root, load_dataset(DataConfig()))

