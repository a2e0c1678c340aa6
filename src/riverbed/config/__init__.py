"""Run configuration: frozen dataclass sections loaded from one TOML file.

A run is fully described by its ``config.toml``::

    [model]      riverbed.model.ModelConfig
    [data]       riverbed.data.DataConfig
    [optim]      OptimConfig (AdamW or schedule-free AdamW)
    [schedule]   a schedule spec for riverbed.schedules.schedule_from_spec (LR multiplier)
    [train]      TrainConfig (batch, lengths, checkpoint/eval cadence, seed, device, dtype)
    [pma]        riverbed.merging.pma_snapshots.PMAConfig (optional: absent = no PMA snapshots)
    [forecast]   riverbed.config.forecast.ForecastConfig (optional: absent = no decay forecast)
    [guard]      riverbed.training.spike_detector.GuardConfig (optional: absent = no spike guard)
    [init]       riverbed.config.init.InitConfig (optional: absent = fresh init)

Example::

    >>> from riverbed.config import load_config_text
    >>> cfg = load_config_text("[train]\\nbatch_size = 8\\nmax_steps = 10\\n")
    >>> cfg.train.batch_size, cfg.optim.lr
    (8, 0.001)

Overrides use the CLI's ``--set section.key=value`` syntax; the value is parsed as a TOML
value (bare words are strings) and type-checked against the field it replaces.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import tomllib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from riverbed.io.input_files import read_text
from riverbed.checkpoints.keep_rules import parse_keep
from riverbed.config.forecast import ForecastConfig
from riverbed.config_types import check_number, coerce
from riverbed.data.config import DataConfig
from riverbed.errors import ConfigError
from riverbed.merging.pma_snapshots import PMAConfig
from riverbed.model.config import ModelConfig
from riverbed.schedules import Schedule, schedule_from_spec, schedule_to_spec
from riverbed.toml_writer import dumps_toml
from riverbed.config.guard import GuardConfig
from riverbed.config.init import InitConfig

# --------------------------------------------------------------------------------------------
# Sections owned here
# --------------------------------------------------------------------------------------------


OPTIMIZERS = ("adamw", "schedulefree-adamw")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW hyper-parameters. The learning rate actually applied at step s is
    ``lr * schedule.multiplier(s)``."""

    lr: float = 1e-3
    """Peak learning rate (the schedule's multiplier 1.0)."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW (beta1, beta2)."""
    eps: float = 1e-8
    """AdamW epsilon."""
    weight_decay: float = 0.1
    """Decoupled weight decay, applied to matrices only (>= 2-D: embeddings and projections);
    norms' gains are never decayed (the usual GPT/Llama recipe)."""
    grad_clip: float = 1.0
    """Clip the global gradient L2 norm to this value; 0 disables clipping."""
    name: str = "adamw"
    """The optimizer: "adamw" (torch's) or "schedulefree-adamw" (Defazio et al. 2024, "The Road Less
    Scheduled": the ``schedulefree`` package, ``pip install riverbed[schedulefree]``), which needs no
    decay: pair it with a constant schedule (``warmup-stable``); riverbed evaluates and checkpoints
    its averaged (eval-mode) weights."""

    def __post_init__(self) -> None:
        _check(self.name in OPTIMIZERS, "optim.name", self.name, f"one of {', '.join(OPTIMIZERS)}")
        _check(self.lr > 0 and math.isfinite(self.lr), "optim.lr", self.lr, "a positive number")
        _check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "optim.betas", self.betas, "two numbers in [0, 1)")
        _check(self.eps > 0, "optim.eps", self.eps, "positive")
        _check(self.weight_decay >= 0, "optim.weight_decay", self.weight_decay, ">= 0")
        _check(self.grad_clip >= 0, "optim.grad_clip", self.grad_clip, ">= 0 (0 disables)")


@dataclass(frozen=True)
class TrainConfig:
    """The step loop: batch geometry, length, cadences, reproducibility and hardware."""

    batch_size: int = 32
    """GLOBAL batch in sequences per optimizer step, whatever the number of processes and
    micro-batches: it must be divisible by world_size * grad_accum."""
    seq_len: int = 128
    """Tokens per sequence (<= model.max_seq_len)."""
    grad_accum: int = 1
    """Micro-batches per optimizer step (per process)."""
    max_steps: int | None = None
    """Length of the main branch in optimizer steps; None (and no max_tokens) = indefinite."""
    max_tokens: int | None = None
    """Length in tokens instead of steps (rounded up to whole steps). At most one of the two."""
    ckpt_every: int = 1000
    """Save a checkpoint every this many steps (0 = only at the end)."""
    ckpt_every_tokens: int = 0
    """Or: save whenever the token count crosses a multiple of this (0 = off; exclusive with
    ckpt_every > 0 only if ckpt_every is set to 0)."""
    eval_every: int = 100
    """Held-out loss every this many steps (0 = only at the end of a branch)."""
    eval_batches: int = 8
    """Held-out batches per evaluation (a fixed set: the same sequences every time)."""
    eval_batch_size: int = 0
    """Sequences per held-out batch; 0 = batch_size."""
    seed: int = 0
    """Seeds the model initialisation and the data order."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto = cuda when available, else cpu."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """bfloat16 = autocast the forward pass (weights and optimizer stay float32)."""
    parallel: Literal["ddp", "fsdp"] = "ddp"
    """Under torchrun: ddp = replicate the model (DistributedDataParallel); fsdp = shard it with
    FSDP2 (fully_shard per transformer block, then the root). One process: the plain model."""
    log_every: int = 10
    """Write a metrics row (train loss, LR, grad norm, tokens/s) every this many steps."""
    threads: int = 0
    """torch intra-op threads on CPU; 0 = leave torch's default."""
    tensorboard: bool = True
    """Also write TensorBoard events next to metrics.jsonl when tensorboard is installed."""
    keep: tuple[str, ...] = ()
    """Retention plan (riverbed.runs.retention): rules like "merge=4,100", "guard=2", "emulate",
    "plan=plan.json"; main-branch checkpoints no rule needs are deleted as training goes. () = keep all."""

    def __post_init__(self) -> None:
        for key in ("batch_size", "seq_len", "grad_accum", "eval_batches"):
            _check(getattr(self, key) >= 1, f"train.{key}", getattr(self, key), ">= 1")
        for key in ("ckpt_every", "ckpt_every_tokens", "eval_every", "eval_batch_size", "threads", "seed"):
            _check(getattr(self, key) >= 0, f"train.{key}", getattr(self, key), ">= 0")
        _check(self.log_every >= 1, "train.log_every", self.log_every, ">= 1")
        _check(self.parallel in ("ddp", "fsdp"), "train.parallel", self.parallel, "'ddp' or 'fsdp'")
        _check(self.batch_size % self.grad_accum == 0, "train.batch_size", self.batch_size,
               f"divisible by train.grad_accum={self.grad_accum}")
        for key in ("max_steps", "max_tokens"):
            v = getattr(self, key)
            _check(v is None or v >= 1, f"train.{key}", v, ">= 1 or absent")
        if self.max_steps is not None and self.max_tokens is not None:
            raise ConfigError(f"train.max_steps={self.max_steps} and train.max_tokens={self.max_tokens}: set at most one")
        if self.keep:
            parse_keep(self.keep)
        if self.ckpt_every and self.ckpt_every_tokens:
            raise ConfigError(f"train.ckpt_every={self.ckpt_every} and train.ckpt_every_tokens={self.ckpt_every_tokens}: "
                              "set one of them to 0")

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    @property
    def total_steps(self) -> int | None:
        """max_steps, or max_tokens rounded up to whole steps; None = indefinite."""
        if self.max_steps is not None:
            return self.max_steps
        if self.max_tokens is not None:
            return -(-self.max_tokens // self.tokens_per_step)
        return None


def _check(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r}: expected {expected}")


DEFAULT_SCHEDULE: dict[str, Any] = {"type": "warmup-stable", "warmup": 100}
"""Default [schedule]: linear warmup then a constant main branch (WSD without its decay)."""

# --------------------------------------------------------------------------------------------
# The sections: TOML table -> dataclass. Required ones are always built (empty table = defaults);
# optional ones stay None when the table is absent.
# --------------------------------------------------------------------------------------------

SECTIONS: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig, "train": TrainConfig}
OPTIONAL_SECTIONS: dict[str, type] = {"pma": PMAConfig, "guard": GuardConfig, "init": InitConfig, "forecast": ForecastConfig}
SCHEDULE = "schedule"  # a free-form spec dict, validated by riverbed.schedules


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; ``to_toml()`` / ``from_dict()`` round-trip it exactly."""

    model: ModelConfig
    data: DataConfig
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_SCHEDULE))
    train: TrainConfig = field(default_factory=TrainConfig)
    pma: PMAConfig | None = None
    guard: GuardConfig | None = None
    init: InitConfig | None = None
    forecast: ForecastConfig | None = None

    # ---- conversions -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in (*SECTIONS, SCHEDULE, *OPTIONAL_SECTIONS):
            value = getattr(self, name)
            if value is None:
                continue
            out[name] = copy.deepcopy(dict(value)) if name == SCHEDULE else _dataclass_to_dict(value)
        return out

    def to_toml(self) -> str:
        return dumps_toml(self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "<dict>") -> RunConfig:
        return _build(d, source)

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def schedule_object(self) -> Schedule:
        """The schedule object of the [schedule] spec."""
        return schedule_from_spec(dict(self.schedule))

    def flops_per_step(self) -> float:
        return float(self.model.flops_per_token(self.train.seq_len)) * self.train.tokens_per_step


def _dataclass_to_dict(obj: Any) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            v = _dataclass_to_dict(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Read a TOML config and apply ``section.key=value`` overrides.

    Unknown sections or keys and ill-typed values raise ConfigError naming ``section.key``
    and the file.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(read_text(path, "config file"))
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return config_from_dict(raw, overrides, source=str(path))


def load_config_text(text: str, overrides: Sequence[str] = (), *, source: str = "<string>") -> RunConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return config_from_dict(raw, overrides, source=source)


def config_from_dict(raw: Mapping[str, Any], overrides: Sequence[str] = (), *, source: str = "<dict>") -> RunConfig:
    raw = copy.deepcopy(dict(raw))
    base = copy.deepcopy(raw)
    for item in overrides:
        apply_override(raw, item)
    try:
        return _build(raw, source)
    except ConfigError:
        if overrides:
            _blame_override(base, overrides, source)
        raise


def _blame_override(base: dict[str, Any], overrides: Sequence[str], source: str) -> None:
    """Raise the error as one in the ``--set`` value that caused it, if the file alone is valid."""
    try:
        _build(base, source)
    except ConfigError:
        return  # the file itself is invalid: its own error stands
    for item in overrides:
        apply_override(base, item)
        try:
            _build(base, source)
        except ConfigError as exc:
            msg = str(exc).removeprefix(f"{source}: ")
            raise ConfigError(f"--set {item!r}: {msg}") from None


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one ``section.key=value`` (``schedule.a.b=v`` for nested schedule specs) in place."""
    key, sep, text = item.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not sep or len(parts) < 2 or not all(parts):
        raise ConfigError(f"--set {item!r}: expected section.key=value")
    if len(parts) > 2 and parts[0] != SCHEDULE:
        raise ConfigError(f"--set {item!r}: {key} is not a key (sections are flat)")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {item!r}: {part} is not a table")
    node[parts[-1]] = parse_value(text.strip())


def parse_value(text: str) -> Any:
    """A TOML value (``8``, ``1e-3``, ``true``, ``[0.9, 0.95]``, ``"x"``); bare words are strings."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _build(raw: Mapping[str, Any], source: str) -> RunConfig:
    unknown = sorted(set(raw) - set(SECTIONS) - set(OPTIONAL_SECTIONS) - {SCHEDULE})
    if unknown:
        known = ", ".join([*SECTIONS, SCHEDULE, *OPTIONAL_SECTIONS])
        raise ConfigError(f"{source}: unknown section [{unknown[0]}] (known: {known})")
    kwargs: dict[str, Any] = {}
    for name in (*SECTIONS, *OPTIONAL_SECTIONS):
        table = raw.get(name)
        if table is None and name in OPTIONAL_SECTIONS:
            continue
        table = {} if table is None else table
        if not isinstance(table, Mapping):
            raise ConfigError(f"{source}: {name} must be a table [{name}], got {table!r}")
        cls = SECTIONS.get(name) or OPTIONAL_SECTIONS[name]
        kwargs[name] = build_section(cls, name, table, source)
    spec = raw.get(SCHEDULE, DEFAULT_SCHEDULE)
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{source}: schedule must be a table [schedule], got {spec!r}")
    kwargs[SCHEDULE] = _validate_schedule(dict(spec), source)
    cfg = RunConfig(**kwargs)
    _cross_check(cfg, source)
    return cfg


def build_section(cls: type, name: str, table: Mapping[str, Any], source: str) -> Any:
    """Instantiate a section dataclass from a TOML table, type-checking every key."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    # A section class may offer ``from_dict`` for extra keys of its own (model.preset = "5m");
    # that method then rejects what it does not know.
    from_dict = getattr(cls, "from_dict", None)
    values = {}
    for key, value in table.items():
        if key in names:
            values[key] = coerce(value, hints[key], f"{name}.{key}", source)
        elif from_dict is not None:
            values[key] = value
        else:
            raise ConfigError(f"{source}: unknown key {name}.{key} (known: {', '.join(sorted(names))})")
    try:
        return from_dict(values) if from_dict is not None else cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: [{name}] {exc}") from None


def _validate_schedule(spec: dict[str, Any], source: str) -> dict[str, Any]:
    check_number(spec, SCHEDULE, source)  # NaN / inf / out-of-int64 values, naming the key
    try:
        # Normalise through the schedule object: the stored spec is canonical (defaults omitted).
        return schedule_to_spec(schedule_from_spec(spec))
    except ConfigError as exc:
        raise ConfigError(f"{source}: [schedule] {exc}") from None
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"{source}: [schedule] {exc!s}") from None


def _cross_check(cfg: RunConfig, source: str) -> None:
    if cfg.train.seq_len > cfg.model.max_seq_len:
        raise ConfigError(f"{source}: train.seq_len={cfg.train.seq_len} exceeds model.max_seq_len={cfg.model.max_seq_len}")
    for section in ("guard", "pma"):
        # Both restore or merge whole weights in memory (full tensors), which FSDP's shards are not.
        if cfg.train.parallel == "fsdp" and getattr(cfg, section) is not None:
            raise ConfigError(f"{source}: [{section}] with train.parallel='fsdp' is not supported yet (it restores or "
                              f"merges full weights in memory): use train.parallel='ddp' for this run")
