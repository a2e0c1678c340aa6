"""Held-out loss: the mean token cross-entropy over a fixed set of held-out batches.

The batches are the same sequences at every evaluation and for every branch of a run (the
data package builds them deterministically from the held-out split, which no training step
ever reads), so eval losses of different steps and branches are directly comparable.
:func:`heldout_set` is the one place that builds them, for the trainer and for
:func:`evaluate_checkpoints` (``riverbed eval``) alike, so both report the same numbers.

Per-bucket losses: a dataset may expose ``buckets`` (see :class:`Buckets`): a name per
bucket and a function giving each target token's bucket. Where it does, the evaluation also
reports the token-weighted mean loss of every bucket, from the logits of the same forward pass
(:func:`evaluate_stats`, the one implementation, used by the trainer's eval rows, ``riverbed
eval`` and the probes); where it does not, only the loss.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from riverbed.checkpoints.layout import STATE_FILE
from riverbed.checkpoints.schema import CheckpointState, read_state
from riverbed.checkpoints.state import apply_model_tensors
from riverbed.config import RunConfig, config_from_dict, load_config
from riverbed.data import heldout_batches, load_dataset
from riverbed.data.dataset import TokenData
from riverbed.errors import CheckpointError, ConfigError
from riverbed.checkpoints.formats import load_tensors, open_input
from riverbed.merging.order import position
from riverbed.model import build_model
from riverbed.checkpoints.hf import load_hf
from riverbed.runs.config_io import load_run_config
from riverbed.training.devices import micro_batch_size, resolve_device
from riverbed.training.distributed import DistInfo, sum_
from riverbed.training.evaluate_hf import check_hf_config, hf_heldout, load_hf_model, with_overrides

Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]


class Buckets(Protocol):
    """What a dataset exposes (as ``data.buckets``) to have its held-out loss split by bucket."""

    names: tuple[str, ...]
    """Bucket names; bucket ids index this tuple."""

    def of(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Bucket id (int64, shape of ``y``) of every target token of a batch; -1 = in no bucket."""
        ...


@dataclass(frozen=True)
class EvalStats:
    """The held-out loss (mean of per-batch means, as the trainer logs it) and, where the data
    defines buckets, each bucket's token-weighted mean loss (None for a bucket with no token)."""

    loss: float
    buckets: dict[str, float | None] = field(default_factory=dict)


def autocast_factory(device: torch.device, dtype: str) -> Callable[[], contextlib.AbstractContextManager]:
    """A zero-argument context-manager factory: bf16 autocast, or nothing for float32."""
    if dtype == "bfloat16":
        return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def heldout_set(cfg: RunConfig, data: TokenData) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The run's fixed evaluation batches (``train.eval_batches`` batches of
    ``train.eval_batch_size`` or ``train.batch_size`` windows of the held-out split)."""
    eval_bs = cfg.train.eval_batch_size or cfg.train.batch_size
    return list(heldout_batches(data.heldout, cfg.train.seq_len, eval_bs, cfg.train.eval_batches))


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    batches: Batches,
    *,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    chunk: int = 0,
    dist: DistInfo | None = None,
) -> float:
    """Mean of the per-batch mean losses. Batches are dealt round-robin over DDP ranks and
    summed, so the value does not depend on the number of processes (up to float rounding).
    ``chunk`` > 0 splits each batch into row chunks to bound memory (weighted exactly)."""
    return evaluate_stats(model, batches, device=device, autocast=autocast, chunk=chunk, dist=dist).loss


@torch.no_grad()
def evaluate_stats(
    model: torch.nn.Module,
    batches: Batches,
    *,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    chunk: int = 0,
    dist: DistInfo | None = None,
    buckets: Buckets | None = None,
) -> EvalStats:
    """:func:`evaluate`, plus per-bucket losses when ``buckets`` is given (computed from the
    logits of the same forward pass, so the loss itself is unchanged)."""
    dist = dist or DistInfo()
    if not batches:
        raise ValueError("evaluate: no held-out batches")
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    n_b = len(buckets.names) if buckets is not None else 0
    b_sum = torch.zeros(n_b, dtype=torch.float64, device=device)
    b_count = torch.zeros(n_b, dtype=torch.float64, device=device)
    try:
        for i, (x, y) in enumerate(batches):
            if i % dist.world != dist.rank:
                continue
            rows = x.shape[0]
            step = chunk if chunk > 0 else rows
            for start in range(0, rows, step):
                xs = x[start:start + step].to(device, non_blocking=True)
                ys = y[start:start + step].to(device, non_blocking=True)
                with autocast():
                    out = model(xs, ys)
                total += out.loss.double() * (xs.shape[0] / rows)
                if buckets is not None:
                    _add_buckets(buckets, out.logits, xs, ys, b_sum, b_count)
    finally:
        model.train(was_training)
    sum_(total, dist)
    if buckets is not None:
        sum_(b_sum, dist)
        sum_(b_count, dist)
    per_bucket = {name: (float(b_sum[i] / b_count[i]) if b_count[i] > 0 else None)
                  for i, name in enumerate(buckets.names if buckets is not None else ())}
    return EvalStats(float(total.item()) / len(batches), per_bucket)


def _add_buckets(buckets: Buckets, logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                 b_sum: torch.Tensor, b_count: torch.Tensor) -> None:
    ids = buckets.of(x, y).to(y.device).reshape(-1)
    if ids.shape[0] != y.numel():
        raise ConfigError(f"data buckets: {ids.shape[0]} bucket ids for {y.numel()} target tokens")
    tok = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.reshape(-1), reduction="none").double()
    keep = (ids >= 0) & (y.reshape(-1) != -100)  # -100: ignored targets, as in the loss
    b_sum.index_add_(0, ids[keep], tok[keep])
    b_count.index_add_(0, ids[keep], torch.ones_like(tok[keep]))


# ---- held-out loss of checkpoints on disk (`riverbed eval`) ----------------------------------


@dataclass(frozen=True)
class CheckpointEval:
    """The held-out loss of one checkpoint, with what the trainer logged for it (if anything)."""

    path: str
    kind: str  # "riverbed" (a run's checkpoint), "merge" (riverbed merge output), "hf", "safetensors", "bin", "nanogpt", "dcp"
    step: int | None  # the checkpoint's step where it records one
    loss: float
    buckets: dict[str, float | None] = field(default_factory=dict)
    logged_loss: float | None = None  # eval_loss in its state.json: the trainer's evaluation at that step

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON form: a non-finite loss (a diverged checkpoint) is null."""

        def fin(x: float | None) -> float | None:
            return x if x is not None and math.isfinite(x) else None

        return {"path": self.path, "kind": self.kind, "step": self.step, "loss": fin(self.loss),
                "buckets": {k: fin(v) for k, v in self.buckets.items()}, "logged_loss": fin(self.logged_loss)}


def evaluate_checkpoints(
    paths: Sequence[str | Path],
    cfg: RunConfig | None = None,
    *,
    run: str | Path | None = None,
    config: str | Path | None = None,
    data: Any | None = None,
    data_file: str | Path | None = None,
    tokenizer: str | None = None,
    seq_len: int | None = None,
    eval_batches: int | None = None,
    batch_size: int | None = None,
) -> list[CheckpointEval]:
    """Held-out loss of each checkpoint (a run's ``step_N`` dir, a merge output, a Hugging Face
    dir, a DCP folder, a ``.safetensors`` / ``.bin`` / ``ckpt.pt`` file) on a held-out split:
    the trainer's batches, chunking, device and autocast, so a run checkpoint's loss equals the
    ``eval_loss`` logged at its step.

    The run config comes from ``cfg``, ``run`` (its config.toml), ``config`` (a TOML file), or
    else the first riverbed checkpoint's state.json; a Hugging Face directory's config.json must
    then agree with its model (a ConfigError names the key). With no riverbed config at all,
    Hugging Face directories are built by transformers from their own config.json and evaluated
    on ``data_file`` (:mod:`riverbed.training.evaluate_hf`). ``data_file`` (with ``tokenizer``)
    replaces the data source, ``seq_len`` / ``eval_batches`` / ``batch_size`` the evaluation
    geometry. A checkpoint that does not fit the model is a CheckpointError naming the file and
    the tensor.

    >>> [e.loss for e in evaluate_checkpoints(["runs/x/branches/main/checkpoints/step_0000000100"])]  # doctest: +SKIP
    [3.1742]
    """

    if not paths:
        raise ConfigError("evaluate: give at least one checkpoint")
    for path in paths:  # before any loading: a typo is named at once
        if not Path(path).exists():
            raise CheckpointError(f"{path}: checkpoint does not exist")
    cfg = resolve_eval_config(paths, cfg, run=run, config=config, required=data_file is None)
    if cfg is None:
        return _evaluate_hf(paths, data_file, tokenizer, seq_len, eval_batches, batch_size)  # type: ignore[arg-type]
    cfg = with_overrides(cfg, data_file, tokenizer, seq_len, eval_batches, batch_size)
    for path in paths:
        if _state(path) is None:
            check_hf_config(path, cfg.model)
    evaluator = HeldoutEvaluator(cfg, data)
    out = []
    for path in paths:
        kind = load_weights(evaluator.model, path)
        stats = evaluator.stats_of_loaded()
        state = _state(path)
        out.append(CheckpointEval(str(path), kind, None if state is None else state.step, stats.loss, stats.buckets,
                                  None if state is None else state.eval_loss))
    return out


class HeldoutEvaluator:
    """The one evaluation of weights outside the training loop: a checkpoint on disk, a merge
    held in memory, or the model as it is, on the run's held-out set with the trainer's batches,
    device, autocast and micro-batch chunking, so a run checkpoint's loss equals the ``eval_loss``
    logged at its step. One model is built once and reloaded per evaluation.

    >>> ev = HeldoutEvaluator(cfg, data)                                            # doctest: +SKIP
    >>> ev.loss("runs/x/branches/main/checkpoints/step_0000000100"), ev.loss(merged_tensors)  # doctest: +SKIP
    """

    def __init__(self, cfg: Any, data: Any | None = None) -> None:
        self.cfg = cfg
        self.data = load_dataset(cfg.data) if data is None else data
        self.device = resolve_device(cfg.train.device)
        self.batches = heldout_set(cfg, self.data)
        self.autocast = autocast_factory(self.device, cfg.train.dtype)
        # chunk = the single-process trainer's micro-batch, so even the float rounding matches
        self.chunk = micro_batch_size(cfg, 1)
        self.model = build_model(cfg.model, seed=cfg.train.seed, device=self.device)

    @property
    def tokens(self) -> int:
        """Target tokens in the held-out set."""
        return sum(int(y.numel()) for _, y in self.batches)

    def load(self, weights: str | Path | Mapping[str, torch.Tensor], source: str = "merged weights") -> None:
        """Put ``weights`` (a checkpoint path, or tensors by parameter name) into the model, strictly."""
        if isinstance(weights, (str, Path)):
            load_weights(self.model, weights)
        else:
            apply_model_tensors(self.model, dict(weights), source=source)

    def stats_of_loaded(self) -> EvalStats:
        return evaluate_stats(self.model, self.batches, device=self.device, autocast=self.autocast, chunk=self.chunk,
                              buckets=getattr(self.data, "buckets", None))

    def stats(self, weights: str | Path | Mapping[str, torch.Tensor], source: str = "merged weights") -> EvalStats:
        """Held-out loss (and per-bucket losses where the data has buckets) of ``weights``."""
        self.load(weights, source)
        return self.stats_of_loaded()

    def loss(self, weights: str | Path | Mapping[str, torch.Tensor], source: str = "merged weights") -> float:
        return self.stats(weights, source).loss

    def window_losses(self, weights: str | Path | Mapping[str, torch.Tensor],
                      source: str = "merged weights") -> torch.Tensor:
        """Mean loss of every held-out window (float64, one per sequence, in batch order): their
        mean is the held-out loss (all batches have the same size), their spread its sampling error."""
        self.load(weights, source)
        return evaluate_windows(self.model, self.batches, device=self.device, autocast=self.autocast,
                                chunk=self.chunk)


@torch.no_grad()
def evaluate_windows(model: torch.nn.Module, batches: Batches, *, device: torch.device,
                     autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                     chunk: int = 0) -> torch.Tensor:
    """Per-window mean token loss over ``batches`` (single process), from the same forward pass
    as :func:`evaluate_stats`."""
    was_training = model.training
    model.eval()
    out: list[torch.Tensor] = []
    try:
        for x, y in batches:
            step = chunk if chunk > 0 else x.shape[0]
            for start in range(0, x.shape[0], step):
                xs, ys = x[start:start + step].to(device), y[start:start + step].to(device)
                with autocast():
                    logits = model(xs, ys).logits
                tok = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), ys.reshape(-1),
                                                        reduction="none", ignore_index=-100).double()
                keep = (ys.reshape(-1) != -100).double()
                out.append((tok * keep).reshape(ys.shape).sum(1) / keep.reshape(ys.shape).sum(1).clamp(min=1))
    finally:
        model.train(was_training)
    return torch.cat(out).cpu()


def _evaluate_hf(paths: Sequence[str | Path], data_file: str | Path, tokenizer: str | None, seq_len: int | None,
                 eval_batches: int | None, batch_size: int | None) -> list[CheckpointEval]:
    """Hugging Face directories, each built from its own config.json, on the held-out split of ``data_file``."""
    dataset, batches = hf_heldout(paths, data_file, tokenizer, seq_len, eval_batches, batch_size)
    device = resolve_device("auto")
    out = []
    for path in paths:
        stats = evaluate_stats(load_hf_model(path, device), batches, device=device, buckets=getattr(dataset, "buckets", None))
        pos = position(path)
        kind = "merge" if (Path(path) / "merge.json").is_file() else "hf"
        out.append(CheckpointEval(str(path), kind, None if pos is None else pos.step, stats.loss, stats.buckets))
    return out


def resolve_eval_config(paths: Sequence[str | Path], cfg: RunConfig | None = None, *, run: str | Path | None = None,
                        config: str | Path | None = None, required: bool = True) -> RunConfig | None:
    """The RunConfig to evaluate with (see :func:`evaluate_checkpoints`); None when there is none
    and ``required`` is False (Hugging Face directories evaluated on their own config.json)."""
    given = [n for n, v in (("cfg", cfg), ("--run", run), ("--config", config)) if v is not None]
    if len(given) > 1:
        raise ConfigError(f"evaluate: give one of {', '.join(given)}, not several")
    if cfg is not None:
        return cfg
    if run is not None:
        return load_run_config(run)
    if config is not None:
        return load_config(config)
    for path in paths:
        state = _state(path)
        if state is not None and isinstance(state.config, dict):
            return config_from_dict(state.config, source=f"{Path(path) / STATE_FILE} (config)")
    if not required:
        return None
    raise ConfigError("evaluate: none of the inputs is a riverbed checkpoint with its config; "
                      "give --run RUN or --config CONFIG (the held-out split to evaluate on), "
                      "or --data FILE to evaluate Hugging Face directories as their config.json builds them")


def load_weights(model: torch.nn.Module, path: str | Path) -> str:
    """Load any supported checkpoint into ``model`` strictly; returns its kind."""
    src = open_input(path)
    tensors = load_tensors(src)  # the merge's own reader of every format (safetensors, bin, ckpt.pt, DCP)
    kind = "merge" if src.directory is not None and (src.directory / "merge.json").is_file() else src.kind
    try:
        apply_model_tensors(model, tensors, source=str(path))
    except CheckpointError:
        if src.directory is None or kind == "riverbed" or not (src.directory / "config.json").is_file():
            raise
        # A transformers-saved directory may use HF's own layout (fused Mixtral experts): convert.
        _hf_cfg, sd = load_hf(src.directory)
        apply_model_tensors(model, sd, source=str(path))
    return kind


def _state(path: str | Path) -> CheckpointState | None:
    """The checkpoint state of a riverbed checkpoint directory; None for other inputs."""
    return read_state(path) if (Path(path) / STATE_FILE).is_file() else None


def eval_row(stats: EvalStats, data: Any, batches: Batches) -> dict[str, Any]:
    """The fields of a metrics.jsonl eval row from one :func:`evaluate_stats` pass: ``eval_loss``;
    for data with buckets (bigram, data.bucket_map) ``eval_loss_by_bucket`` (buckets holding no
    held-out position are left out); for bigram data also ``eval_optimal_loss``, the true
    language's loss on exactly these held-out tokens (riverbed.data.bigram), so excess =
    eval_loss - it."""
    row: dict[str, Any] = {"eval_loss": stats.loss}
    if getattr(data, "buckets", None) is None:
        return row
    row["eval_loss_by_bucket"] = {k: v for k, v in stats.buckets.items() if v is not None}
    language = getattr(data, "language", None)
    if language is not None:
        row["eval_optimal_loss"] = optimal_loss(language, batches)
    return row


def optimal_loss(language: Any, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Mean of the per-batch true-model losses, averaged exactly like :func:`evaluate`."""
    per_batch = [language.sample_loss(x.flatten().numpy(), y.flatten().numpy()) for x, y in batches]
    return sum(per_batch) / len(per_batch)
