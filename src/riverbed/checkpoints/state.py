"""Training checkpoints: model, optimizer, RNG as safetensors, everything else as JSON.

One checkpoint is one directory (``riverbed.checkpoints.layout``) written atomically::

    model.safetensors       model.state_dict() under its Hugging Face names (tied weights once)
    optimizer.safetensors   AdamW moments keyed by PARAMETER NAME: "<name>.exp_avg",
                            "<name>.exp_avg_sq", "<name>.step"; param-group hyper-parameters
                            in the file's metadata. Names, not indices, so that the optimizer
                            states of several checkpoints can be merged like their weights.
    rng.safetensors         torch CPU RNG ("cpu") and each CUDA device's ("cuda.<i>"), uint8
    state.json              riverbed.checkpoints.schema.CheckpointState: step, tokens, flops,
                            branch, schedule spec, data position, losses, provenance
    <component>.json        state of components (the spike guard's guard.json), if any

No pickle anywhere. Example::

    >>> import torch, tempfile, pathlib
    >>> m = torch.nn.Linear(2, 2); opt = torch.optim.AdamW(m.parameters())
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "step_0000000000"
    >>> _ = save_checkpoint(d, m, opt, {"step": 0})
    >>> load_checkpoint(d, m, opt).step
    0
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from riverbed.checkpoints.layout import HF_CONFIG_FILE, MODEL_FILE, OPTIMIZER_FILE, RNG_FILE, STATE_FILE
from riverbed.checkpoints import schedule_free as SF
from riverbed.checkpoints.optimizer_state import OPTIMIZER_FORMAT, load_optimizer_tensors, optimizer_tensors
from riverbed.checkpoints.schema import FORMAT, CheckpointState, as_state, read_state
from riverbed.errors import CheckpointError
from riverbed.io.atomic import atomic_dir
from riverbed.io.strict_json import dumps as strict_dumps, read_json
from riverbed.model.config import ModelConfig
from riverbed.model.hf import hf_config_dict

_RESERVED = (MODEL_FILE, OPTIMIZER_FILE, RNG_FILE, STATE_FILE, HF_CONFIG_FILE)


# --------------------------------------------------------------------------------------------
# Model tensors
# --------------------------------------------------------------------------------------------


def model_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` with shared storage kept once (first name wins, as in HF's
    tied ``embed_tokens`` / ``lm_head``), contiguous and on the CPU, ready for safetensors."""
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int, tuple[int, ...]]] = set()
    for name, t in model.state_dict().items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape)) if t.numel() else None
        if key is not None and key in seen:
            continue
        if key is not None:
            seen.add(key)
        out[name] = t.detach().to("cpu").contiguous()
    return out


def _aliases(model: torch.nn.Module) -> dict[str, str]:
    """name -> the name it shares storage with (only for the second and later names)."""
    first: dict[tuple[int, int, tuple[int, ...]], str] = {}
    out = {}
    for name, t in model.state_dict(keep_vars=True).items():
        if not t.numel():
            continue
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        if key in first:
            out[name] = first[key]
        else:
            first[key] = name
    return out


def load_model_tensors(path: str | Path, model: torch.nn.Module) -> None:
    """Load a model.safetensors (or a checkpoint dir holding one) into ``model``, strictly:
    missing, unexpected or mis-shaped tensors raise CheckpointError naming the file."""
    path = Path(path)
    file = path / MODEL_FILE if path.is_dir() else path
    apply_model_tensors(model, read_safetensors(file), source=str(file))


def apply_model_tensors(model: torch.nn.Module, tensors: Mapping[str, torch.Tensor], *, source: str) -> None:
    """Copy HF-named tensors into ``model`` after checking names and shapes (tied aliases may
    be absent); raises CheckpointError naming ``source`` and the tensor."""
    expected = model.state_dict()
    aliases = _aliases(model)
    missing = [k for k in expected if k not in tensors and k not in aliases]
    unexpected = [k for k in tensors if k not in expected]
    if missing or unexpected:
        raise CheckpointError(f"{source}: does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for k, t in tensors.items():
        if tuple(t.shape) != tuple(expected[k].shape):
            raise CheckpointError(f"{source}: tensor {k} has shape {tuple(t.shape)}, model expects {tuple(expected[k].shape)}")
    full = {**{a: tensors[src] for a, src in aliases.items() if src in tensors}, **tensors}
    model.load_state_dict(full, strict=True)


# --------------------------------------------------------------------------------------------
# RNG
# --------------------------------------------------------------------------------------------


def capture_rng() -> dict[str, torch.Tensor]:
    """The global torch RNG states as uint8 tensors ("cpu", "cuda.<i>")."""
    out = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"cuda.{i}"] = s
    return out


def restore_rng(states: Mapping[str, torch.Tensor]) -> None:
    """Restore what ``capture_rng`` captured; CUDA states only where the same devices exist."""
    if "cpu" in states:
        torch.set_rng_state(states["cpu"].to(torch.uint8))
    cuda = sorted((int(k.split(".")[1]), v) for k, v in states.items() if k.startswith("cuda."))
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([v.to(torch.uint8) for _, v in cuda])


# --------------------------------------------------------------------------------------------
# Whole checkpoints
# --------------------------------------------------------------------------------------------


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    state: CheckpointState | Mapping[str, Any],
    rng: Mapping[str, torch.Tensor] | None = None,
    *,
    overwrite: bool = False,
    files: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint directory of ``model`` (and ``optimizer``) atomically.

    ``state`` is a :class:`CheckpointState` (a state.json-shaped mapping is validated into
    one); ``rng`` defaults to the current global RNG states; ``files`` are the JSON files of
    components that keep state (``{"guard.json": {...}}``), written inside the checkpoint
    before it becomes visible. Returns ``path``.
    """
    if SF.is_schedule_free(optimizer):  # the averaged weights x to model.safetensors; y and z with the state
        with SF.eval_weights(model, optimizer) as train_params:
            # copies: on the CPU model_tensors shares the parameters' storage, which gets y back on exit
            weights = {k: v.clone() for k, v in model_tensors(model).items()}
            opt = SF.state_tensors(model, optimizer, train_params)
    else:
        weights, opt = model_tensors(model), optimizer_tensors(model, optimizer) if optimizer is not None else None
    return write_checkpoint(path, weights, opt, state, rng=rng, hf_config=model_hf_config(model),
                            overwrite=overwrite, files=files)


def write_checkpoint(
    path: str | Path,
    model: Mapping[str, torch.Tensor],
    optimizer: tuple[Mapping[str, torch.Tensor], Mapping[str, str]] | None,
    state: CheckpointState | Mapping[str, Any],
    *,
    rng: Mapping[str, torch.Tensor] | None = None,
    hf_config: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    files: Mapping[str, Any] | None = None,
) -> Path:
    """The one writer of checkpoint directories: named tensors, optimizer state by parameter
    name ``(tensors, metadata)``, RNG, state.json and component files, in a temporary sibling
    that is fsynced and renamed into place (riverbed.io.atomic)."""
    path = Path(path)
    body = as_state(state, source=str(path / STATE_FILE)).dumps()  # NaN loss -> null + reason
    extra = component_texts(path, files)
    rng_t = {k: v.detach().to("cpu").contiguous() for k, v in (capture_rng() if rng is None else rng).items()}
    try:
        with atomic_dir(path, overwrite=overwrite) as tmp:
            save_file({k: v.contiguous() for k, v in model.items()}, str(tmp / MODEL_FILE), metadata={"format": "pt"})
            if optimizer is not None:
                tensors, meta = optimizer
                save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp / OPTIMIZER_FILE), metadata=dict(meta))
            save_file(rng_t, str(tmp / RNG_FILE))
            if hf_config is not None:  # makes the directory loadable by transformers' from_pretrained
                (tmp / HF_CONFIG_FILE).write_text(json.dumps(hf_config, indent=2) + "\n", encoding="utf-8")
            for name, text in extra.items():
                (tmp / name).write_text(text, encoding="utf-8")
            # state.json last: layout.list_checkpoints treats a dir with it as complete.
            (tmp / STATE_FILE).write_text(body, encoding="utf-8")
    except FileExistsError:
        raise CheckpointError(f"checkpoint {path} already exists") from None
    return path


def component_texts(path: Path, files: Mapping[str, Any] | None) -> dict[str, str]:
    """The text of each component file (strict JSON) of the checkpoint ``path``, checked before
    anything is written: a reserved or non-plain name, or an object that is not JSON, raises
    CheckpointError naming it. Shared with the sharded writer (riverbed.training.distributed_checkpoint)."""
    out = {}
    for name, obj in (files or {}).items():
        if name in _RESERVED or "/" in name or name.startswith("."):
            raise CheckpointError(f"{path}: component file name {name!r} is reserved or not a plain file name")
        try:
            out[name] = strict_dumps(obj, indent=2) + "\n"
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path / name}: not JSON-serialisable: {exc}") from None
    return out


def read_component_files(path: str | Path) -> dict[str, Any]:
    """Every component file (``*.json`` beside the tensors, other than state.json and config.json)
    of the checkpoint ``path``, parsed: what callbacks' ``checkpoint_files`` wrote there, handed back
    to their ``load_checkpoint_files`` on resume. An unreadable one raises CheckpointError naming it."""
    return {f.name: read_json(f, CheckpointError) for f in sorted(Path(path).glob("*.json"))
            if f.name not in _RESERVED and f.is_file()}


def model_hf_config(model: torch.nn.Module) -> dict[str, Any] | None:
    """The Hugging Face config.json of a riverbed model (None for other modules)."""
    cfg = getattr(model, "cfg", None)
    if not isinstance(cfg, ModelConfig):
        return None
    return hf_config_dict(cfg)


def read_safetensors(file: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file; a missing, truncated or corrupt file raises CheckpointError."""
    if not file.is_file():
        raise CheckpointError(f"{file}: missing")
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{file}: unreadable (truncated or corrupt): {exc}") from None


def read_safetensors_metadata(file: Path) -> dict[str, str]:
    try:
        with safe_open(str(file), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{file}: unreadable (truncated or corrupt): {exc}") from None


def load_checkpoint(
    path: str | Path,
    model: torch.nn.Module | None,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    rng: bool = False,
) -> CheckpointState:
    """Load a checkpoint into ``model`` (and ``optimizer``; and the global RNG with
    ``rng=True``) and return its state. Any missing, truncated or corrupt file raises
    CheckpointError naming it; nothing is modified unless every file reads cleanly."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path}: not found")
    state = read_state(path)
    opt_t = None
    if optimizer is not None:
        opt_file = path / OPTIMIZER_FILE
        opt_t = read_safetensors(opt_file)
        meta = read_safetensors_metadata(opt_file)
        expected = SF.FORMAT if SF.is_schedule_free(optimizer) else OPTIMIZER_FORMAT
        if meta.get("format") != expected:
            raise CheckpointError(f"{opt_file}: format {meta.get('format')!r}, expected {expected!r} "
                                  "(the optimizer of the config, optim.name)")
    rng_t = read_safetensors(path / RNG_FILE) if rng else None
    if model is not None:
        load_model_tensors(path, model)
    if optimizer is not None and model is not None:
        if SF.is_schedule_free(optimizer):
            SF.load_state_tensors(opt_t, meta, model, optimizer, source=str(path / OPTIMIZER_FILE))
        else:
            load_optimizer_tensors(opt_t, model, optimizer, source=str(path / OPTIMIZER_FILE))
    if rng_t is not None:
        restore_rng(rng_t)
    return state


def checkpoint_bytes(path: str | Path) -> int:
    """Total size of a checkpoint directory in bytes."""
    return sum(f.stat().st_size for f in Path(path).iterdir() if f.is_file())


__all__ = [
    "CheckpointState",
    "FORMAT",
    "OPTIMIZER_FORMAT",
    "apply_model_tensors",
    "capture_rng",
    "checkpoint_bytes",
    "component_texts",
    "load_checkpoint",
    "load_model_tensors",
    "load_optimizer_tensors",
    "model_hf_config",
    "model_tensors",
    "optimizer_tensors",
    "read_safetensors",
    "read_state",
    "restore_rng",
    "save_checkpoint",
    "write_checkpoint",
]
