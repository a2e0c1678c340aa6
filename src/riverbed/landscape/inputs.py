"""What a probe reads: checkpoints of one model, and the run's fixed held-out batches.

A probe input is a riverbed checkpoint directory (``RUN/branches/<b>/checkpoints/step_k``; its
``state.json`` carries the run's config) or a Hugging Face model directory (``config.json`` +
safetensors) together with ``config=`` a riverbed config TOML whose ``[data]`` and ``[train]``
sections say which held-out batches to use. ``config=`` also overrides a riverbed checkpoint's
own data and eval settings (never its model).

All inputs must be the same model: the same tensor names and shapes (an error names the first
tensor that differs and both files) and the same model config (an error names the key). Probes
evaluate in float32 whatever ``train.dtype`` was: a landscape is a difference of close losses.

>>> setup, params = open_checkpoints(["runs/x/branches/main/checkpoints/step_0000000100"])  # doctest: +SKIP
>>> setup.objective.loss(params[0])                                                          # doctest: +SKIP
2.41
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from riverbed.checkpoints import layout
from riverbed.checkpoints.state import apply_model_tensors, read_safetensors, read_state
from riverbed.config import RunConfig, load_config
from riverbed.data import heldout_batches, load_dataset
from riverbed.errors import CheckpointError, ConfigError
from riverbed.training.evaluate import heldout_set
from riverbed.landscape.objective import Objective, Params, model_objective, model_params
from riverbed.model import build_model
from riverbed.checkpoints.hf import load_hf
from riverbed.model.hf import config_from_hf
from riverbed.training.devices import resolve_device


@dataclass
class ProbeSetup:
    """The model (architecture of the inputs), its config, the held-out batches and the objective."""

    cfg: RunConfig
    model: torch.nn.Module
    data: Any
    batches: list[tuple[torch.Tensor, torch.Tensor]]
    objective: Objective
    device: torch.device
    paths: list[Path]


def _is_riverbed(path: Path) -> bool:
    return (path / layout.STATE_FILE).is_file() and (path / layout.MODEL_FILE).is_file()


def _read(path: Path, config: Path | None) -> tuple[RunConfig | None, Any, dict[str, torch.Tensor]]:
    """(run config or None, model config, HF-named tensors) of one input."""
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path}: not found (expected a checkpoint or Hugging Face directory)")
    if _is_riverbed(path):
        state = read_state(path)
        raw = state.config
        run_cfg = None
        if isinstance(raw, dict):
            try:
                run_cfg = RunConfig.from_dict(raw, source=str(path / layout.STATE_FILE))
            except ConfigError as exc:
                raise CheckpointError(f"checkpoint {path}: its config does not load: {exc}") from None
        elif config is None:
            raise CheckpointError(f"checkpoint {path}: state.json has no run config; pass --config CONFIG.toml")
        model_cfg = run_cfg.model if run_cfg is not None else _hf_model_config(path, config_from_hf)
        return run_cfg, model_cfg, read_safetensors(path / layout.MODEL_FILE)
    if (path / "config.json").is_file():
        model_cfg, sd = load_hf(path)
        return None, model_cfg, sd
    raise CheckpointError(f"checkpoint {path}: neither a riverbed checkpoint (state.json + model.safetensors) "
                          "nor a Hugging Face model directory (config.json)")


def _hf_model_config(path: Path, config_from_hf: Any) -> Any:
    file = path / layout.HF_CONFIG_FILE
    if not file.is_file():
        raise CheckpointError(f"checkpoint {path}: no run config in state.json and no {layout.HF_CONFIG_FILE}")
    return config_from_hf(json.loads(file.read_text(encoding="utf-8")), str(file))


def check_same_model(paths: Sequence[Path], model_cfgs: Sequence[Any], tensors: Sequence[dict[str, torch.Tensor]]) -> None:
    """Every input has the first one's tensors (names, shapes) and model config; errors name both."""
    ref, ref_t, ref_c = paths[0], tensors[0], model_cfgs[0]
    for p, t, c in zip(paths[1:], tensors[1:], model_cfgs[1:]):
        for name in ref_t:
            if name not in t:
                raise CheckpointError(f"checkpoint {p}: has no tensor {name} (in {ref}): not the same model")
            if tuple(t[name].shape) != tuple(ref_t[name].shape):
                raise CheckpointError(f"tensor {name}: shape {tuple(t[name].shape)} in {p} but "
                                      f"{tuple(ref_t[name].shape)} in {ref}: incompatible checkpoints")
        extra = sorted(set(t) - set(ref_t))
        if extra:
            raise CheckpointError(f"checkpoint {p}: tensor {extra[0]} is not in {ref}: not the same model")
        if c != ref_c:
            diff = next(f.name for f in fields(c) if getattr(c, f.name) != getattr(ref_c, f.name))
            raise CheckpointError(f"checkpoint {p}: model.{diff}={getattr(c, diff)!r} but {getattr(ref_c, diff)!r} "
                                  f"in {ref}: different models")


def open_checkpoints(paths: Sequence[str | Path], *, config: str | Path | None = None, device: str = "auto",
                     data: Any | None = None) -> tuple[ProbeSetup, list[Params]]:
    """Load ``paths`` (one model) and the run's held-out objective; returns (setup, params per path)."""

    paths = [Path(p) for p in paths]
    if not paths:
        raise ConfigError("no checkpoints given")
    cfg_file = Path(config) if config is not None else None
    read = [_read(p, cfg_file) for p in paths]
    check_same_model(paths, [m for _, m, _ in read], [t for _, _, t in read])
    run_cfg, model_cfg, _ = read[0]
    if cfg_file is not None:
        user = load_config(cfg_file)
        cfg = user.replace(model=model_cfg)
    elif run_cfg is not None:
        cfg = run_cfg
    else:
        raise ConfigError(f"{paths[0]} is a Hugging Face directory: pass --config CONFIG.toml (its [data] and "
                          "[train] sections choose the held-out batches)")
    if data is None:
        data = load_dataset(cfg.data)
    if data.vocab_size > model_cfg.vocab_size:
        raise ConfigError(f"the data has {data.vocab_size} token ids but the model's vocabulary is {model_cfg.vocab_size}")
    dev = resolve_device(device)
    model = build_model(model_cfg, seed=0, device=dev)
    params = []
    for p, (_, _, t) in zip(paths, read):
        apply_model_tensors(model, t, source=str(p))
        params.append(model_params(model))
    batches = heldout_set(cfg, data)  # the trainer's held-out batches (riverbed.training.evaluate)
    objective = model_objective(model, batches, device=dev)
    return ProbeSetup(cfg, model, data, batches, objective, dev, paths), params
