"""The schema of a checkpoint's ``state.json``: one typed record, its only writer and reader.

Everything a checkpoint says about itself besides tensors lives in :class:`CheckpointState`:
the global step, tokens and FLOPs, the branch and its schedule, the LR scale a spike guard set,
the data position, the last losses, where it started from and why it was written. The loop,
merged initialisation, the merge selection, the PMA monitor, the run tree and the probes all
read it through :func:`read_state`; :func:`riverbed.checkpoints.state.save_checkpoint` writes it.

The JSON layout is the one riverbed has always written (``"format": "riverbed.checkpoint.v1"``,
losses under ``"metrics"``); readers accept older files: a held-out loss stored as
``metrics.heldout_loss`` or ``metrics.loss`` is read as ``eval_loss``, missing fields take their
defaults, unknown keys are kept in ``extra`` and written back unchanged.

>>> s = CheckpointState(step=3, tokens=192, eval_loss=2.5)
>>> CheckpointState.from_json(s.to_json()) == s
True
>>> CheckpointState.from_json({"step": 7, "metrics": {"heldout_loss": 1.5}}).eval_loss
1.5
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from riverbed.checkpoints.layout import STATE_FILE
from riverbed.io.strict_json import dumps as strict_dumps, read_json
from riverbed.errors import CheckpointError

FORMAT = "riverbed.checkpoint.v1"
# Older names of the held-out loss in state.json "metrics", read as eval_loss (newest first).
EVAL_LOSS_ALIASES = ("eval_loss", "heldout_loss", "loss")


@dataclass(frozen=True)
class DataPosition:
    """Where the data stream stands: step s trains on global batch ``s + offset``."""

    position: int
    """The next global batch index (``step + offset``)."""
    sample: int
    """The next sample index (``position * batch_size``)."""
    seed: int
    """The data seed (``train.seed``)."""
    offset: int = 0
    """Batches skipped so far (the spike guard's "skip" action raises it)."""

    def to_json(self) -> dict[str, int]:
        return {"position": self.position, "sample": self.sample, "seed": self.seed, "offset": self.offset}

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, source: str) -> DataPosition:
        try:
            return cls(int(d.get("position", 0)), int(d.get("sample", 0)), int(d.get("seed", 0)), int(d.get("offset", 0)))
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{source}: bad data position {dict(d)!r} ({exc})") from None


@dataclass(frozen=True)
class CheckpointState:
    """A checkpoint's ``state.json``, typed. Only ``step`` is required."""

    step: int
    """Optimizer steps completed since the run started (whatever the branch)."""
    tokens: int = 0
    flops: float = 0.0
    branch: str | None = None
    schedule: dict[str, Any] | None = None
    """The branch's schedule spec (riverbed.schedules.schedule_to_spec)."""
    lr_scale: float = 1.0
    """Multiplies the scheduled LR (a spike guard's LR cut; a fork inherits it)."""
    data: DataPosition | None = None
    train_loss: float | None = None
    """Mean training loss of the last step (None: unknown or non-finite)."""
    eval_loss: float | None = None
    """The held-out loss at this step (the loop's last evaluation; None: not evaluated)."""
    init: str | None = None
    """The checkpoint this branch was started from (a fork's parent), if any."""
    reason: str | None = None
    """Why it was written: periodic | final | stopped | interrupted."""
    world_size: int | None = None
    parallel: str | None = None
    """The parallelism that wrote it: "fsdp" | "ddp" | "single" (None: an older file)."""
    config: dict[str, Any] | None = None
    """The run config (RunConfig.to_dict()), so a checkpoint explains itself."""
    init_from_merge: dict[str, Any] | None = None
    """Provenance of a merged-initialisation checkpoint (riverbed.training.merged_init)."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    """Keys this version does not know, kept so that a rewrite loses nothing."""

    @property
    def data_offset(self) -> int:
        return 0 if self.data is None else self.data.offset

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to state.json (strict JSON after strict_json.finite)."""
        # Every field is written (null when unknown): one fixed layout for every writer.
        return {**self.extra, "format": FORMAT, "step": self.step, "tokens": self.tokens, "flops": self.flops,
                "branch": self.branch, "schedule": self.schedule, "lr_scale": self.lr_scale,
                "data": None if self.data is None else self.data.to_json(),
                "metrics": {"train_loss": self.train_loss, "eval_loss": self.eval_loss},
                "init": self.init, "reason": self.reason, "world_size": self.world_size,
                "parallel": self.parallel, "config": self.config,
                "init_from_merge": self.init_from_merge}

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, source: str = STATE_FILE) -> CheckpointState:
        """Parse a state.json object; a missing or malformed ``step`` raises CheckpointError naming ``source``."""
        if not isinstance(d, Mapping) or "step" not in d:
            raise CheckpointError(f"{source}: not a riverbed checkpoint state (no 'step')")
        metrics = d.get("metrics") or {}
        if not isinstance(metrics, Mapping):
            raise CheckpointError(f"{source}: 'metrics' must be an object, got {metrics!r}")
        known = {f.name for f in fields(cls)} | {"format", "metrics"}
        try:
            data = d.get("data")
            return cls(
                step=int(d["step"]),
                tokens=int(d.get("tokens") or 0),
                flops=float(d.get("flops") or 0.0),
                branch=d.get("branch"),
                schedule=d.get("schedule"),
                lr_scale=float(d.get("lr_scale", 1.0) if d.get("lr_scale") is not None else 1.0),
                data=None if data is None else DataPosition.from_json(data, source=source),
                train_loss=_loss(metrics, ("train_loss",)),
                eval_loss=_loss(metrics, EVAL_LOSS_ALIASES),
                init=None if d.get("init") is None else str(d["init"]),
                reason=d.get("reason"),
                world_size=None if d.get("world_size") is None else int(d["world_size"]),
                parallel=None if d.get("parallel") is None else str(d["parallel"]),
                config=d.get("config"),
                init_from_merge=d.get("init_from_merge"),
                extra={k: v for k, v in d.items() if k not in known},
            )
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{source}: malformed checkpoint state ({exc})") from None

    def dumps(self) -> str:
        """The state.json text (strict JSON: a NaN loss becomes null plus ``<key>_nonfinite``)."""
        try:
            return strict_dumps(self.to_json(), indent=2) + "\n"
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{STATE_FILE}: state is not JSON-serialisable: {exc}") from None


def _loss(metrics: Mapping[str, Any], names: tuple[str, ...]) -> float | None:
    # A non-finite loss was written as null (+ "<name>_nonfinite"): read as "no finite value".
    for name in names:
        if metrics.get(name) is not None:
            return float(metrics[name])
    return None


def as_state(state: CheckpointState | Mapping[str, Any], *, source: str = STATE_FILE) -> CheckpointState:
    """A CheckpointState from itself or from a state.json-shaped mapping (validated)."""
    return state if isinstance(state, CheckpointState) else CheckpointState.from_json(state, source=source)


def read_state(path: str | Path) -> CheckpointState:
    """The state.json of a checkpoint directory; a missing or corrupt one raises CheckpointError naming it."""
    file = Path(path) / STATE_FILE
    if not file.is_file():
        raise CheckpointError(f"{file}: missing (not a checkpoint directory?)")
    return CheckpointState.from_json(read_json(file, CheckpointError), source=str(file))

