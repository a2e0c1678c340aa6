"""The spike guard as a Hugging Face ``Trainer`` callback (PMA-init for your own training stack).

:class:`PMAGuardCallback` snapshots the model every ``every`` optimizer steps (the newest
``keep`` snapshots, in host memory or as safetensors on disk), judges every logged ``loss`` /
``grad_norm`` (and the weights' finiteness) with riverbed's :class:`~riverbed.training.guard.SpikeDetector`,
and on a spike restores the merge of the last ``pma_count`` healthy snapshots (``action =
"pma-init"``) or the newest healthy one (``"rollback"``) into the model, sets the optimizer
state by policy and optionally scales the LR down for a while. Example::

    from transformers import Trainer, TrainingArguments
    from riverbed.integrations.hf import PMAGuardCallback
    from riverbed.training.guard import GuardConfig

    guard = PMAGuardCallback(GuardConfig(action="pma-init", pma_count=3), every=100)
    args = TrainingArguments("out", logging_steps=1, logging_nan_inf_filter=False)
    Trainer(model, args, train_dataset=ds, callbacks=[guard]).train()
    print(guard.events)   # spike, recovery, ... (self-describing dicts)

Set ``logging_steps`` small: a spike is seen when it is logged. Set
``logging_nan_inf_filter=False`` so a NaN loss is logged as NaN (non-finite weights are caught
by the callback's own check either way). The ``Trainer`` cannot rewind its data loader, so after
a recovery training continues with the *next* batches: ``rollback`` and ``skip`` are the same
here, and the step counter (hence the LR schedule) keeps going. Single-process or DDP
(every rank restores identically); not for sharded (FSDP / DeepSpeed ZeRO-3) parameters.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

import torch

try:
    from transformers import TrainerCallback
except ImportError as exc:  # pragma: no cover - exercised only without transformers
    raise ImportError("riverbed.integrations.hf needs transformers: pip install 'riverbed[hf]'") from exc

from safetensors.torch import load_file, save_file

from riverbed.checkpoints.atomic import atomic_path, write_text
from riverbed.errors import ConfigError, RiverbedError
from riverbed.training.guard import GuardConfig, SpikeDetector
from riverbed.training.recovery import (
    describe_merge,
    merge_coefficients,
    merge_optimizer_states,
    merge_tensors,
    nonfinite_names,
    select_healthy,
    weights_finite,
)

log = logging.getLogger("riverbed.guard")


def _unwrap(optimizer: Any) -> torch.optim.Optimizer | None:
    # accelerate wraps the optimizer; its state lives on the inner torch optimizer
    return getattr(optimizer, "optimizer", optimizer)


def optimizer_state_by_name(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Flat ``{"<param>.<key>": tensor}`` copy (on the CPU) of any torch optimizer's state."""
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for p, st in optimizer.state.items():
        if id(p) not in names:
            continue
        for key, v in st.items():
            t = v if isinstance(v, torch.Tensor) else torch.tensor(v)
            out[f"{names[id(p)]}.{key}"] = t.detach().to("cpu", copy=True)
    return out


def load_optimizer_state_by_name(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                                 state: dict[str, torch.Tensor] | None) -> None:
    """Replace the optimizer's state with a flat by-name state; None clears it (fresh moments)."""
    current = {p: dict(s) for p, s in optimizer.state.items()}
    optimizer.state.clear()
    if state is None:
        return
    for name, p in model.named_parameters():
        prefix = f"{name}."
        entries = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and "." not in k[len(prefix):]}
        if not entries:
            continue
        new = {}
        for key, v in entries.items():
            old = current.get(p, {}).get(key)
            # keep each entry where the optimizer keeps it (AdamW's "step" lives on the CPU)
            device = old.device if isinstance(old, torch.Tensor) else (p.device if v.dim() else torch.device("cpu"))
            new[key] = v.to(device=device, dtype=v.dtype, copy=True)
        optimizer.state[p] = new


class PMAGuardCallback(TrainerCallback):
    """Loss-spike guard with automatic recovery for ``transformers.Trainer`` (see module doc)."""

    def __init__(self, config: GuardConfig | None = None, *, every: int = 50, keep: int | None = None,
                 storage: Literal["memory", "disk"] = "memory", directory: str | Path | None = None,
                 events_path: str | Path | None = None) -> None:
        self.config = config or GuardConfig()
        if every < 1:
            raise ConfigError(f"every={every!r}: expected >= 1 (snapshot spacing in optimizer steps)")
        if storage not in ("memory", "disk"):
            raise ConfigError(f"storage={storage!r}: expected memory | disk")
        if storage == "disk" and directory is None:
            raise ConfigError("storage='disk' needs directory= (where the snapshots are written)")
        # A spike makes the newest snapshots suspect, so keep a couple more than the merge needs.
        self.keep = keep if keep is not None else self.config.pma_count + 2
        if self.keep < self.config.pma_count:
            raise ConfigError(f"keep={self.keep}: expected >= guard.pma_count={self.config.pma_count}")
        self.every, self.storage = every, storage
        self.directory = Path(directory) if directory is not None else None
        self.events_path = Path(events_path) if events_path is not None else None
        self.detector = SpikeDetector(self.config)
        self.events: list[dict[str, Any]] = []
        self.recoveries = 0
        self.stopped_reason: str | None = None
        self._snapshots: dict[int, dict[str, Any]] = {}  # step -> {"model": ..., "optim": ...}
        self._last_logged = 0
        self._scale_until = -1
        self._saved_lrs: list[float] | None = None

    # ---- snapshots -------------------------------------------------------------------------
    def _needs_optimizer(self) -> bool:
        return self.config.optimizer_state != "reset"

    def _store(self, step: int, model: torch.nn.Module, optimizer: Any) -> None:
        weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        bad = nonfinite_names(weights)
        if bad:
            self._event({"event": "snapshot-skipped", "step": step, "reason": f"tensor {bad[0]} holds NaN/inf"})
            return
        opt = optimizer_state_by_name(model, _unwrap(optimizer)) if (self._needs_optimizer() and optimizer) else None
        if self.storage == "disk":
            assert self.directory is not None
            self.directory.mkdir(parents=True, exist_ok=True)
            entry: dict[str, Any] = {"model": self.directory / f"step_{step:010d}.safetensors"}
            with atomic_path(entry["model"]) as tmp:
                save_file(weights, str(tmp))
            if opt is not None:
                entry["optim"] = self.directory / f"step_{step:010d}.optimizer.safetensors"
                with atomic_path(entry["optim"]) as tmp:
                    save_file(opt, str(tmp))
        else:
            entry = {"model": weights, "optim": opt}
        self._snapshots[step] = entry
        for old in sorted(self._snapshots)[:-self.keep]:
            self._drop(old)

    def _drop(self, step: int) -> None:
        entry = self._snapshots.pop(step)
        if self.storage == "disk":
            for key in ("model", "optim"):
                if entry.get(key) is not None:
                    Path(entry[key]).unlink(missing_ok=True)

    def _load(self, step: int, key: str) -> dict[str, torch.Tensor] | None:
        value = self._snapshots[step].get(key)
        if value is None or isinstance(value, dict):
            return value
        return load_file(str(value))

    @property
    def snapshot_steps(self) -> list[int]:
        return sorted(self._snapshots)

    # ---- Trainer events --------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        self._last_logged = state.global_step

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        if state.global_step < self._scale_until and optimizer is not None:
            groups = _unwrap(optimizer).param_groups
            self._saved_lrs = [g["lr"] for g in groups]
            for g in groups:
                g["lr"] = g["lr"] * self.config.lr_scale

    def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        # Put the scheduled LR back before the scheduler steps, whatever scheduler it is.
        if self._saved_lrs is not None and optimizer is not None:
            for g, lr in zip(_unwrap(optimizer).param_groups, self._saved_lrs):
                g["lr"] = lr
            self._saved_lrs = None

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        if model is not None and state.global_step % self.every == 0:
            self._store(state.global_step, model, optimizer)

    def on_log(self, args, state, control, logs=None, model=None, optimizer=None, **kwargs):
        if not logs or "loss" not in logs or model is None:
            return
        # The logged loss averages the steps since the last log; their forward passes used the
        # weights after updates [last_logged, global_step - 1], so the spike's onset (in
        # "weights after c updates" units, like the snapshots) is last_logged.
        onset = self._last_logged
        self._last_logged = state.global_step
        finite = weights_finite(model) if self.config.check_weights else True
        verdict = self.detector.update(onset, logs["loss"], logs.get("grad_norm"), weights_finite=finite)
        if not verdict.spike:
            return
        self._event({**verdict.to_event(), "global_step": state.global_step})
        try:
            self._recover(verdict.onset if verdict.onset is not None else onset, state, control, model, optimizer)
        except RiverbedError as exc:
            self._stop(control, f"spike guard: recovery failed: {exc}")

    # ---- acting ----------------------------------------------------------------------------
    def _recover(self, onset: int, state, control, model: torch.nn.Module, optimizer: Any) -> None:
        cfg = self.config
        if cfg.action == "stop":
            self._stop(control, f"spike guard: spike at step {state.global_step} (action = stop)")
            return
        if self.recoveries >= cfg.max_recoveries:
            self._stop(control, f"spike guard: spike at step {state.global_step} after {self.recoveries} "
                                f"recoveries (max_recoveries={cfg.max_recoveries}); the run keeps spiking, stopping")
            return
        n = cfg.pma_count if cfg.action == "pma-init" else 1
        steps = select_healthy(self.snapshot_steps, onset=onset, count=n, margin=cfg.healthy_margin)
        if not steps:
            self._stop(control, f"spike guard: no healthy snapshot before step {onset} to recover from "
                                f"(snapshots: {self.snapshot_steps}); stopping instead of training on broken weights")
            return
        if len(steps) < n:
            msg = f"only {len(steps)} healthy snapshots before step {onset} for pma_count={n}"
            if cfg.on_insufficient == "error":
                self._stop(control, f"spike guard: {msg} (on_insufficient = error)")
                return
            log.warning("spike guard: %s; merging those", msg)
            self._event({"event": "fallback", "reason": msg + "; merging those (on_insufficient = use-available)"})
        method = cfg.pma_method if cfg.action == "pma-init" else "sma"
        coeffs = merge_coefficients(method, len(steps), cfg.alpha)
        labels = [f"snapshot step {s}" for s in steps]
        merged = merge_tensors([self._load(s, "model") for s in steps], coeffs, names=labels)
        opt_states = [self._load(s, "optim") for s in steps] if self._needs_optimizer() else []
        if any(o is None for o in opt_states):
            raise ConfigError(f"optimizer_state={cfg.optimizer_state!r} but a snapshot has no optimizer state")
        opt_state = merge_optimizer_states(opt_states, cfg.optimizer_state, coeffs)  # type: ignore[arg-type]
        with torch.no_grad():
            model.load_state_dict({k: v.to(model.state_dict()[k].device) for k, v in merged.items()})
        if optimizer is not None:
            load_optimizer_state_by_name(model, _unwrap(optimizer), opt_state)
        for s in [s for s in self.snapshot_steps if s >= onset]:
            self._drop(s)  # they hold spiking weights
        self.detector.rewind(onset)
        self.recoveries += 1
        if cfg.lr_scale < 1 and cfg.lr_scale_steps:
            self._scale_until = state.global_step + cfg.lr_scale_steps
        self._event({"event": "recovery", "action": cfg.action, "global_step": state.global_step,
                     **describe_merge(steps, coeffs, method), "optimizer_state": cfg.optimizer_state,
                     "lr_scale": cfg.lr_scale, "lr_scale_steps": cfg.lr_scale_steps,
                     "recovery": self.recoveries, "max_recoveries": cfg.max_recoveries})

    def _stop(self, control, reason: str) -> None:
        log.error(reason)
        self.stopped_reason = reason
        control.should_training_stop = True
        self._event({"event": "stop", "reason": reason})

    def _event(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        if event.get("event") != "stop":
            log.warning("spike guard: %s", json.dumps(event))
        if self.events_path is not None:
            write_text(self.events_path, "".join(json.dumps(e) + "\n" for e in self.events))
