"""One seed of the claims study: a few tiny runs, every claim's number measured from them.

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

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from riverbed.checkpoints import layout
from riverbed.config import OptimConfig, RunConfig, TrainConfig
from riverbed.data import DataConfig
from riverbed.experiments.continued_training import checkpoint_eval_loss
from riverbed.merging import merge
from riverbed.model import ModelConfig
from riverbed.runs import Run
from riverbed.runs.drive import train_main
from riverbed.runs.fork import plan_requests, run_requests


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


def _config(spec: StudySpec, seed: int, lr: float, schedule: dict[str, Any]) -> Any:
    return RunConfig(model=ModelConfig.preset("tiny", max_seq_len=64), data=DataConfig(), optim=OptimConfig(lr=lr),
                     schedule=schedule,
                     train=TrainConfig(batch_size=spec.batch_size, seq_len=spec.seq_len, ckpt_every=spec.ckpt,
                                       eval_every=spec.decay, eval_batches=spec.eval_batches, log_every=10,
                                       device="cpu", tensorboard=False, seed=seed, threads=1))


def _main(spec: StudySpec, root: Path, name: str, seed: int, lr: float, data: Any, schedule: dict[str, Any]) -> Any:
    cfg = _config(spec, seed, lr, schedule)
    run = Run.create(root / name, cfg)
    train_main(cfg, run.path, run, until_step=spec.steps, progress=False, data=data)
    return cfg, Run.open(run.path)


def _decays(run: Any, cfg: Any, spec: StudySpec, shapes: tuple[str, ...], data: Any) -> dict[str, float]:
    fork = spec.steps - spec.decay
    out = {}
    for shape in shapes:
        (rec,) = run_requests(run, plan_requests(run, [fork], shape, spec.decay), cfg=cfg, data=data, progress=False)
        out[shape] = checkpoint_eval_loss(cfg, data, run.path / rec.final.checkpoint)
    return out


def _merge_loss(run: Any, cfg: Any, data: Any, end: int, n: int, method: str, work: Path) -> float:
    steps = [s for s in (end - i * cfg.train.ckpt_every for i in range(n)) if s > 0][::-1]
    inputs = [layout.checkpoint_dir(run.path, layout.MAIN, s) for s in steps]
    out = work / f"merge-{method}-{end}"
    merge(out, inputs, method, alpha=0.2 if method == "ema" else None, progress=False, verbose=False, overwrite=True)
    return checkpoint_eval_loss(cfg, data, out)


def measure_seed(spec: StudySpec, seed: int, root: Path, data: Any) -> dict[str, float]:
    """Every claim's measurement for one seed (keys: the claim ids of ``riverbed.claims.runner``)."""
    stable = {"type": "warmup-stable", "warmup": spec.warmup}
    hi_cfg, hi = _main(spec, root, "hi", seed, spec.lr, data, stable)
    lo_cfg, lo = _main(spec, root, "lo", seed, spec.lr * spec.lr_ratio, data, stable)
    cos_cfg, cos = _main(spec, root, "cos", seed, spec.lr, data,
                         {"type": "cosine", "steps": spec.steps, "warmup": spec.warmup, "min_ratio": spec.min_ratio})
    # Every loss below is checkpoint_eval_loss of a checkpoint directory: one evaluation for all of them.
    hi_main = checkpoint_eval_loss(hi_cfg, data, layout.checkpoint_dir(hi.path, layout.MAIN, spec.steps))
    lo_main = checkpoint_eval_loss(lo_cfg, data, layout.checkpoint_dir(lo.path, layout.MAIN, spec.steps))
    hi_dec = _decays(hi, hi_cfg, spec, ("1-sqrt", "linear"), data)
    lo_dec = _decays(lo, lo_cfg, spec, ("1-sqrt",), data)
    cos_end = checkpoint_eval_loss(cos_cfg, data, layout.checkpoint_dir(cos.path, layout.MAIN, spec.steps))
    work = root / "merges"
    merged = {m: _merge_loss(hi, hi_cfg, data, spec.steps, spec.merge_n, m, work) for m in ("sma", "ema", "wma")}
    mid = spec.steps // 2 - (spec.steps // 2) % spec.ckpt
    merged_mid = {m: _merge_loss(hi, hi_cfg, data, mid, spec.merge_n, m, work) for m in ("sma", "ema", "wma")}
    gap = hi_main - hi_dec["1-sqrt"]
    spread = max(merged.values()) - min(merged.values())
    spread_mid = max(merged_mid.values()) - min(merged_mid.values())
    return {
        "pma-beats-last": hi_main - merged["sma"],
        "merge-approximates-decay": (hi_main - merged["sma"]) / gap if gap > 0 else 0.0,
        "wsd-vs-cosine": cos_end - hi_dec["1-sqrt"],
        "1sqrt-vs-linear": hi_dec["linear"] - hi_dec["1-sqrt"],
        "drop-grows-with-lr": gap - (lo_main - lo_dec["1-sqrt"]),
        "merges-converge-late": spread_mid - spread,
    }


def with_steps(spec: StudySpec, steps: int) -> StudySpec:
    """The same study over ``steps`` (decay 20 %, checkpoints every ~5 %)."""
    return replace(spec, steps=steps, decay=steps // 5, ckpt=max(1, steps // 20))
