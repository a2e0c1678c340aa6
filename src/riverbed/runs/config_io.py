"""What the run tree keeps of a RunConfig: its dict (manifest), its TOML (config.toml), model size."""

from __future__ import annotations

from pathlib import Path
from collections.abc import Mapping
from os import PathLike
from typing import Any

from riverbed.checkpoints import layout
from riverbed.config import RunConfig, dumps_toml, load_config
from riverbed.errors import RunError


def config_dict(cfg: RunConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The RunConfig as a JSON-able dict (``RunConfig.to_dict``); a plain dict passes through."""
    if isinstance(cfg, Mapping):
        return dict(cfg)
    to_dict = getattr(cfg, "to_dict", None)
    if to_dict is None:
        raise RunError(f"cannot record a run config of type {type(cfg).__name__} (no to_dict())")
    return to_dict()


def config_toml(cfg: RunConfig | Mapping[str, Any]) -> str:
    to_toml = getattr(cfg, "to_toml", None)
    if to_toml is not None:
        return to_toml()

    return dumps_toml(config_dict(cfg))


def model_info(cfg: RunConfig | Mapping[str, Any]) -> dict[str, Any]:
    """Parameter count and training FLOPs per token of the run's model (for scaling points)."""
    model = getattr(cfg, "model", None)
    train = getattr(cfg, "train", None)
    if model is None or not hasattr(model, "n_params"):
        return {}
    info: dict[str, Any] = {"n_params": int(model.n_params())}
    if train is not None and hasattr(model, "flops_per_token"):
        info["flops_per_token"] = float(model.flops_per_token(train.seq_len))
        info["tokens_per_step"] = int(train.tokens_per_step)
    return info


def load_run_config(run_dir: str | PathLike[str]) -> RunConfig:
    """The RunConfig a run was created with (its config.toml)."""

    path = Path(run_dir) / layout.CONFIG
    if not path.is_file():
        raise RunError(f"{path}: missing (the run's config)")
    return load_config(path)
