"""The spike guard for other people's training loops: snapshots, judging, merged restore.

:class:`SnapshotGuard` is the framework-neutral part of the Hugging Face and Lightning callbacks
(:mod:`riverbed.integrations.hf`, :mod:`riverbed.integrations.lightning`): it keeps the newest
``keep`` snapshots (model and, by policy, optimizer state; in host memory or as safetensors on
disk), judges each observed loss / grad norm (and the weights' finiteness) with riverbed's
:class:`~riverbed.training.spike_detector.SpikeDetector`, and on a spike restores the merge of the last
``pma_count`` healthy snapshots (``action = "pma-init"``) or the newest healthy one
(``"rollback"``) into the model, sets the optimizer state by policy and optionally scales the LR
down for a while. The adapters only translate their framework's events into these calls and apply
a returned stop reason. Steps count optimizer updates: a snapshot at step ``c`` holds the
weights after ``c`` updates, and a loss observed with those weights has ``onset = c``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file, save_file

from riverbed.io.atomic import atomic_path, write_text
from riverbed.checkpoints.optimizer_state import load_optimizer_state_by_name, optimizer_state_by_name
from riverbed.errors import ConfigError, RiverbedError
from riverbed.merging.memory import merge_state_dicts
from riverbed.merging.select import pick_spaced
from riverbed.config.guard import GuardConfig
from riverbed.training.spike_detector import SpikeDetector
from riverbed.training.recovery import (
    describe_merge,
    merge_coefficients,
    merge_optimizer_states,
    nonfinite_names,
    weights_finite,
)

log = logging.getLogger("riverbed.guard")


def unwrap_optimizer(optimizer: Any) -> torch.optim.Optimizer | None:
    """The torch optimizer inside a framework wrapper (accelerate, Lightning) or itself."""
    return getattr(optimizer, "optimizer", optimizer)


class SnapshotGuard:
    """Snapshots + spike detection + merged restore, driven by a framework adapter (module doc)."""

    def __init__(self, config: GuardConfig | None = None, *, every: int = 50, keep: int | None = None,
                 storage: Literal["memory", "disk"] = "memory", directory: str | Path | None = None,
                 events_path: str | Path | None = None) -> None:
        self.config = config or GuardConfig()
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
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
        self._scale_until = -1
        self._saved_lrs: list[float] | None = None

    # ---- snapshots -------------------------------------------------------------------------
    def _needs_optimizer(self) -> bool:
        return self.config.optimizer_state != "reset"

    def maybe_snapshot(self, step: int, model: torch.nn.Module, optimizer: Any) -> None:
        """Snapshot the weights after ``step`` updates if ``step`` is a multiple of ``every``."""
        if step % self.every == 0:
            self._store(step, model, optimizer)

    def _store(self, step: int, model: torch.nn.Module, optimizer: Any) -> None:
        weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        bad = nonfinite_names(weights)
        if bad:
            self._event({"event": "snapshot-skipped", "step": step, "reason": f"tensor {bad[0]} holds NaN/inf"})
            return
        inner = unwrap_optimizer(optimizer) if optimizer is not None else None
        opt = optimizer_state_by_name(model, inner) if (self._needs_optimizer() and inner is not None) else None
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

    # ---- LR scale-down after a recovery ----------------------------------------------------
    def scale_lr(self, step: int, optimizer: Any) -> None:
        """Before update ``step``: scale the LR down if a recovery asked for it (see restore_lr)."""
        # once per update: a loop that calls this per micro-batch must not save the scaled LR
        if step < self._scale_until and optimizer is not None and self._saved_lrs is None:
            groups = unwrap_optimizer(optimizer).param_groups
            self._saved_lrs = [g["lr"] for g in groups]
            for g in groups:
                g["lr"] = g["lr"] * self.config.lr_scale

    def restore_lr(self, optimizer: Any) -> None:
        """After the optimizer step, before the scheduler's: put the scheduled LR back."""
        if self._saved_lrs is not None and optimizer is not None:
            for g, lr in zip(unwrap_optimizer(optimizer).param_groups, self._saved_lrs):
                g["lr"] = lr
            self._saved_lrs = None

    # ---- judging and acting ----------------------------------------------------------------
    def judge(self, onset: int, step: int, loss: float, grad_norm: float | None,
              model: torch.nn.Module, optimizer: Any) -> str | None:
        """Judge a loss measured with the weights after ``onset`` updates (now at ``step``).

        On a spike it recovers in place; it returns a reason when training must stop instead.
        """
        finite = weights_finite(model) if self.config.check_weights else True
        verdict = self.detector.update(onset, loss, grad_norm, weights_finite=finite)
        if not verdict.spike:
            return None
        self._event({**verdict.to_event(), "global_step": step})
        try:
            return self._recover(verdict.onset if verdict.onset is not None else onset, step, model, optimizer)
        except RiverbedError as exc:
            return self._stop(f"spike guard: recovery failed: {exc}")

    def _recover(self, onset: int, step: int, model: torch.nn.Module, optimizer: Any) -> str | None:
        cfg = self.config
        if cfg.action == "stop":
            return self._stop(f"spike guard: spike at step {step} (action = stop)")
        if self.recoveries >= cfg.max_recoveries:
            return self._stop(f"spike guard: spike at step {step} after {self.recoveries} recoveries "
                              f"(max_recoveries={cfg.max_recoveries}); the run keeps spiking, stopping")
        n = cfg.pma_count if cfg.action == "pma-init" else 1
        healthy = [s for s in self.snapshot_steps if s < onset - cfg.healthy_margin]  # saved before the spike
        steps = pick_spaced(healthy, last=n, every=1, key=int)
        if not steps:
            return self._stop(f"spike guard: no healthy snapshot before step {onset} to recover from "
                              f"(snapshots: {self.snapshot_steps}); stopping instead of training on broken weights")
        if len(steps) < n:
            msg = f"only {len(steps)} healthy snapshots before step {onset} for pma_count={n}"
            if cfg.on_insufficient == "error":
                return self._stop(f"spike guard: {msg} (on_insufficient = error)")
            log.warning("spike guard: %s; merging those", msg)
            self._event({"event": "fallback", "reason": msg + "; merging those (on_insufficient = use-available)"})
        method = cfg.pma_method if cfg.action == "pma-init" else "sma"
        coeffs = merge_coefficients(method, len(steps), cfg.alpha)
        labels = [f"snapshot step {s}" for s in steps]
        merged = merge_state_dicts([self._load(s, "model") for s in steps], coeffs, dtype="input",
                                   require_finite=True, names=labels)
        opt_states = [self._load(s, "optim") for s in steps] if self._needs_optimizer() else []
        if any(o is None for o in opt_states):
            raise ConfigError(f"optimizer_state={cfg.optimizer_state!r} but a snapshot has no optimizer state")
        opt_state = merge_optimizer_states(opt_states, cfg.optimizer_state, coeffs)  # type: ignore[arg-type]
        with torch.no_grad():
            current = model.state_dict()
            model.load_state_dict({k: v.to(current[k].device) for k, v in merged.items()})
        if optimizer is not None:
            load_optimizer_state_by_name(model, unwrap_optimizer(optimizer), opt_state)
        for s in [s for s in self.snapshot_steps if s >= onset]:
            self._drop(s)  # they hold spiking weights
        self.detector.rewind(onset)
        self.recoveries += 1
        if cfg.lr_scale < 1 and cfg.lr_scale_steps:
            self._scale_until = step + cfg.lr_scale_steps
        self._event({"event": "recovery", "action": cfg.action, "global_step": step,
                     **describe_merge(steps, coeffs, method), "optimizer_state": cfg.optimizer_state,
                     "lr_scale": cfg.lr_scale, "lr_scale_steps": cfg.lr_scale_steps,
                     "recovery": self.recoveries, "max_recoveries": cfg.max_recoveries})
        return None

    def _stop(self, reason: str) -> str:
        log.error(reason)
        self.stopped_reason = reason
        self._event({"event": "stop", "reason": reason})
        return reason

    def _event(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        if event.get("event") != "stop":
            log.warning("spike guard: %s", json.dumps(event))
        if self.events_path is not None:
            write_text(self.events_path, "".join(json.dumps(e) + "\n" for e in self.events))
