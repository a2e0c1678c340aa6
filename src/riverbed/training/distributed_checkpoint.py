"""Checkpoints of a sharded (FSDP2) model through torch.distributed.checkpoint, in safetensors.

A checkpoint written here has exactly the layout of ``riverbed.checkpoints.state`` -- one
``model.safetensors`` under Hugging Face names, ``optimizer.safetensors`` keyed by parameter
name, ``rng.safetensors``, ``config.json``, component files, ``state.json`` (through
``riverbed.checkpoints.schema.CheckpointState``, its one writer) -- so it is a ``riverbed merge``
input, an HF directory, and resumable by 1 process, DDP or FSDP on any world size alike.

Save: every rank writes its own shards of the weights and of the AdamW moments in one DCP save
through its ``HuggingFaceStorageWriter`` (``save_distributed=True``: ``sharded/shard-0000<r>-
model-0000<i>-of-00002.safetensors``, each with its offsets in the safetensors header), and the
writer's consolidation (``enable_consolidation``, run by rank 0 once all shards are down)
stitches them into two full-tensor files: the weights become ``model.safetensors``; the moments
become ``optimizer.safetensors`` once rank 0 adds the header metadata that file carries (format,
param groups) and AdamW's replicated ``step`` scalars (DCP's consolidation writes 0-d tensors as
zeros in torch 2.13, so those bypass it). The per-rank shards are then removed (they would
double the size and are not needed to reshard). Nothing is all-gathered: the stitching reads the
shard files from disk.

Load (resharding): every rank reads only its slices of ``model.safetensors`` and of the moments
in ``optimizer.safetensors`` with DCP's ``HuggingFaceStorageReader`` -- it plans from the
safetensors headers alone; DCP's default ``FileSystemReader`` (a pickled ``.metadata`` file) is
never used on a user's path -- so any world size, and 1 process / DDP / FSDP alike, resumes any
riverbed checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch.distributed.checkpoint import HuggingFaceStorageReader, HuggingFaceStorageWriter
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import get_model_state_dict
from torch.distributed.tensor import DTensor

from riverbed.checkpoints import state as S
from riverbed.io.atomic import atomic_dir
from riverbed.checkpoints.finite import check_file_finite, nonfinite_tensor, require_finite
from riverbed.checkpoints.layout import HF_CONFIG_FILE, MODEL_FILE, OPTIMIZER_FILE, RNG_FILE, STATE_FILE, checkpoints_dir
from riverbed.checkpoints.optimizer_state import MOMENTS, OPTIMIZER_FORMAT, optimizer_metadata
from riverbed.checkpoints.schema import CheckpointState, as_state, read_state
from riverbed.errors import CheckpointError
from riverbed.training.distributed import DistInfo, any_flag, barrier
from riverbed.training.parallel import is_sharded

SHARDS = "sharded"  # DCP's HF writer puts per-rank shards here when consolidating (SHARDED_DIR_NAME)
_INDEX = "model.safetensors.index.json"


# --------------------------------------------------------------------------------------------
# Dispatch: the loop calls these whatever the parallelism
# --------------------------------------------------------------------------------------------


def save(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         state: CheckpointState | Mapping[str, Any], dist_info: DistInfo, *,
         files: Mapping[str, Any] | None = None) -> Path:
    """Write the checkpoint ``path`` from every rank: a sharded model through DCP, else rank 0
    alone through ``state.save_checkpoint`` (the weights are replicated). ``files`` are the
    component files (rank 0's; ``state.write_checkpoint``), inside before the directory becomes
    visible. All ranks return once it is complete."""
    path = Path(path)
    if is_sharded(model):
        save_sharded(path, model, optimizer, state, dist_info, files=files)
    elif dist_info.is_main:
        S.save_checkpoint(path, model, optimizer, state, overwrite=True, files=files)
    barrier(dist_info)
    return path


def load(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, *,
         rng: bool = True) -> CheckpointState:
    """Load any riverbed checkpoint into ``model`` (sharded or not) and refuse NaN/inf weights;
    returns its state.json."""
    path = Path(path)
    refuse_unreshardable(path)
    if is_sharded(model):
        return load_sharded(path, model, optimizer, rng=rng)
    st = S.load_checkpoint(path, model, optimizer, rng=rng)
    require_finite(model, path)
    return st


def load_checkpoint(path: str | Path, model: torch.nn.Module | None, optimizer: torch.optim.Optimizer | None = None, *,
                    rng: bool = False) -> CheckpointState:
    """The public loader (``riverbed.load_checkpoint``): the trainer's own :func:`load`, so a checkpoint
    that the trainer would refuse (NaN/inf weights, per-rank shards only, DCP's pickled format) is
    refused here too, and a sharded (FSDP2) model is filled from the consolidated file. ``model=None``
    reads and returns the state only; ``rng=True`` also restores the global RNG."""
    path = Path(path)
    if model is None:
        refuse_unreshardable(path)
        return S.load_checkpoint(path, None, None, rng=rng)
    return load(path, model, optimizer, rng=rng)


def refuse_unreshardable(path: Path) -> None:
    """CheckpointError for a directory holding only per-rank shards or DCP's default format:
    riverbed reshards from the consolidated ``model.safetensors`` alone, and will not unpickle
    DCP's ``.metadata`` to find out how a ``.distcp`` checkpoint was split."""
    if not path.is_dir() or (path / MODEL_FILE).is_file():
        return
    if (path / ".metadata").exists() or any(path.glob("*.distcp")):
        raise CheckpointError(f"checkpoint {path}: written in torch.distributed.checkpoint's default format "
                              f"(.distcp files + a pickled .metadata), which riverbed does not read (no pickle); "
                              f"it cannot be resharded here -- save it as safetensors (an HF directory) first")
    if (path / SHARDS).is_dir() or (path / _INDEX).is_file():
        raise CheckpointError(f"checkpoint {path}: holds no single consolidated {MODEL_FILE} (only per-rank shards "
                              f"in {SHARDS}/ or an index over several files), so it cannot be resharded onto this "
                              f"world size -- riverbed resumes from one full-tensor {MODEL_FILE}; consolidate it first")


def refuse_unreshardable_branch(run_dir: str | Path, branch: str) -> None:
    """:func:`refuse_unreshardable` for every ``step_*`` of a branch that has a state.json but no
    ``model.safetensors``: ``layout.list_checkpoints`` would skip it and resume silently from an
    older checkpoint (riverbed never writes such a directory; another tool's sharded save does)."""
    root = checkpoints_dir(run_dir, branch)
    if not root.is_dir():
        return
    for child in sorted(root.glob("step_*")):
        if (child / STATE_FILE).is_file():
            refuse_unreshardable(child)


# --------------------------------------------------------------------------------------------
# Save
# --------------------------------------------------------------------------------------------


def _model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The sharded model state (DTensors), each shared parameter under its first name only."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, t in get_model_state_dict(model).items():
        if id(t) in seen:
            continue
        seen.add(id(t))
        out[name] = t
    return out


def _broadcast_path(p: Path | None, dist_info: DistInfo, device: torch.device) -> Path:
    """Rank 0's temporary directory name on every rank (as bytes in a tensor: no pickling)."""
    raw = os.fsencode(str(p)) if p is not None else b""
    n = torch.tensor([len(raw)], dtype=torch.int64, device=device)
    dist.broadcast(n, 0)
    buf = torch.zeros(int(n.item()), dtype=torch.uint8, device=device)
    if dist_info.is_main:
        buf.copy_(torch.frombuffer(bytearray(raw), dtype=torch.uint8))
    dist.broadcast(buf, 0)
    return Path(os.fsdecode(bytes(buf.cpu().tolist())))


def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def _rank0_texts(path: Path, state: CheckpointState | Mapping[str, Any], files: Mapping[str, Any] | None,
                 dist_info: DistInfo) -> tuple[str, dict[str, str]]:
    """state.json and the component files as text, checked on rank 0 before any collective: a
    bad one raises on every rank (no rank is left waiting in the save)."""
    body, texts, error = "", {}, None
    if dist_info.is_main:
        try:
            body = as_state(state, source=str(path / STATE_FILE)).dumps()  # NaN loss -> null + reason
            texts = S.component_texts(path, files)
        except CheckpointError as exc:
            error = exc
    if any_flag(error is not None, dist_info):
        raise error or CheckpointError(f"checkpoint {path}: rank 0 could not serialise its state (see rank 0's error)")
    return body, texts


def save_sharded(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 state: CheckpointState | Mapping[str, Any], dist_info: DistInfo, *,
                 files: Mapping[str, Any] | None = None) -> None:
    """All ranks: weight and AdamW shards through DCP's HF writer in one save, consolidated by
    rank 0 into ``model.safetensors`` and ``optimizer.safetensors``; rank 0 writes the rest (RNG,
    HF config, component ``files``, state.json last) and renames the directory into place."""
    body, texts = _rank0_texts(path, state, files, dist_info)
    model_sd = _model_state(model)
    opt_sd = _optimizer_state(model, optimizer)
    # AdamW's "step" scalars are replicated; DCP's consolidation writes 0-d tensors as zeros
    # (torch 2.13), so they bypass DCP: rank 0 appends its own copies to the consolidated file.
    steps = {k: opt_sd.pop(k).detach().cpu().reshape(()) for k in [k for k in opt_sd if k.endswith(".step")]}
    # Output file 1 = the weights, file 2 = the AdamW state (keys never collide: "<name>.exp_avg").
    mapping = {**dict.fromkeys(model_sd, 1), **dict.fromkeys(opt_sd, 2)}
    n_files = 2 if opt_sd else 1
    device = _comm_device()
    with (atomic_dir(path, overwrite=True) if dist_info.is_main else contextlib.nullcontext()) as tmp:
        tmp = _broadcast_path(tmp, dist_info, device)
        dcp.save({**model_sd, **opt_sd}, storage_writer=HuggingFaceStorageWriter(
            str(tmp), fqn_to_index_mapping=mapping, save_distributed=True, enable_consolidation=True))
        if not dist_info.is_main:
            return
        # Consolidation wrote HF's model-0000i-of-0000n files + an index (rank 0, after every
        # rank's shards were down); a single weight file is named model.safetensors in HF.
        os.replace(tmp / _hf_name(1, n_files), tmp / MODEL_FILE)
        meta = optimizer_metadata(model, optimizer)  # the same header as a single-process save
        if opt_sd:
            with_metadata(tmp / _hf_name(2, n_files), tmp / OPTIMIZER_FILE, meta, extra=steps)
            (tmp / _hf_name(2, n_files)).unlink()
        else:
            save_file({}, str(tmp / OPTIMIZER_FILE), metadata=meta)  # before the first step: no state yet
        (tmp / _INDEX).unlink()
        shutil.rmtree(tmp / SHARDS)
        save_file({k: v.detach().cpu().contiguous() for k, v in S.capture_rng().items()}, str(tmp / RNG_FILE))
        hf = S.model_hf_config(model)
        if hf is not None:
            (tmp / HF_CONFIG_FILE).write_text(json.dumps(hf, indent=2) + "\n", encoding="utf-8")
        for name, text in texts.items():
            (tmp / name).write_text(text, encoding="utf-8")
        (tmp / STATE_FILE).write_text(body, encoding="utf-8")  # last: marks the checkpoint complete


def _hf_name(index: int, count: int) -> str:
    return f"model-{index:05d}-of-{count:05d}.safetensors"  # DCP's _hf_utils.FILE_NAME


def _named_groups(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """The optimizer's param groups with parameter names in place of the parameters."""
    names = {id(p): n for n, p in model.named_parameters()}
    return [{**{k: v for k, v in g.items() if k != "params"}, "params": [names[id(p)] for p in g["params"]]}
            for g in optimizer.param_groups]


def _optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer
                     ) -> dict[str, torch.Tensor]:
    """This rank's AdamW state as ``{"<name>.exp_avg": DTensor shard, ..., "<name>.step": scalar}``
    (the moments are sharded like their parameter; ``step`` is replicated and DCP writes it once)."""
    groups = _named_groups(model, optimizer)
    out: dict[str, torch.Tensor] = {}
    for group, named in zip(optimizer.param_groups, groups):
        for p, name in zip(group["params"], named["params"]):
            for key, value in optimizer.state.get(p, {}).items():
                if key not in MOMENTS:
                    raise CheckpointError(f"optimizer state {key!r} of {name} is not AdamW's (expected {MOMENTS})")
                out[f"{name}.{key}"] = value if torch.is_tensor(value) else torch.tensor(float(value))
    return out


_ST_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.bfloat16: "BF16", torch.float16: "F16",
              torch.int64: "I64", torch.int32: "I32"}


def with_metadata(src: Path, dst: Path, metadata: Mapping[str, str], *,
                  extra: Mapping[str, torch.Tensor] | None = None) -> None:
    """Copy the safetensors file ``src`` to ``dst`` with ``metadata`` in its header (DCP's
    consolidation writes none) and the small tensors ``extra`` appended. Offsets in a
    safetensors header are relative to the end of the header, so the data bytes are streamed
    unchanged; the header is space-padded to 8 bytes as the format asks."""
    with open(src, "rb") as fin:
        (n,) = struct.unpack("<Q", fin.read(8))
        header = json.loads(fin.read(n))
        header["__metadata__"] = {**(header.get("__metadata__") or {}), **metadata}
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        tail = bytearray()
        for name, t in (extra or {}).items():
            data = t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()  # host order: LE
            header[name] = {"dtype": _ST_DTYPES[t.dtype], "shape": list(t.shape),
                            "data_offsets": [end + len(tail), end + len(tail) + len(data)]}
            tail += data
        raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
        raw += b" " * (-len(raw) % 8)
        with open(dst, "wb") as fout:
            fout.write(struct.pack("<Q", len(raw)))
            fout.write(raw)
            shutil.copyfileobj(fin, fout, 16 << 20)
            fout.write(tail)


# --------------------------------------------------------------------------------------------
# Load (any world size, any parallelism that wrote it)
# --------------------------------------------------------------------------------------------


def _header(file: Path) -> tuple[dict[str, tuple[tuple[int, ...], str]], dict[str, str]]:
    """``{name: (shape, dtype)}`` and the metadata of a safetensors file, from its header alone."""
    if not file.is_file():
        raise CheckpointError(f"{file}: missing")
    try:
        with safe_open(str(file), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            return {k: (tuple(fh.get_slice(k).get_shape()), fh.get_slice(k).get_dtype()) for k in fh.keys()}, meta
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for a bad header
        raise CheckpointError(f"{file}: unreadable (truncated or corrupt): {exc}") from None


def _check_model_header(file: Path, expected: Mapping[str, torch.Tensor]) -> None:
    """Names and full shapes of ``file`` against the model."""
    shapes = {k: shape for k, (shape, _) in _header(file)[0].items()}
    missing = [k for k in expected if k not in shapes]
    unexpected = [k for k in shapes if k not in expected]
    if missing or unexpected:
        raise CheckpointError(f"{file}: does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for k, t in expected.items():
        if shapes[k] != tuple(t.shape):
            raise CheckpointError(f"{file}: tensor {k} has shape {shapes[k]}, model expects {tuple(t.shape)}")


def _optimizer_targets(file: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer
                       ) -> tuple[dict[str, torch.Tensor], dict[torch.nn.Parameter, dict[str, torch.Tensor]]]:
    """Empty tensors, sharded like their parameters, for the named AdamW state of ``file`` (checked
    from its header: format, names, completeness, full shapes), and where each goes."""
    header, meta = _header(file)
    if meta.get("format") != OPTIMIZER_FORMAT:
        raise CheckpointError(f"{file}: format {meta.get('format')!r}, expected {OPTIMIZER_FORMAT!r}")
    targets: dict[str, torch.Tensor] = {}
    state: dict[torch.nn.Parameter, dict[str, torch.Tensor]] = {}
    known: set[str] = set()
    names = {id(p): n for n, p in model.named_parameters()}
    for group, named in zip(optimizer.param_groups, _named_groups(model, optimizer)):
        for p, name in zip(group["params"], named["params"]):
            keys = [k for k in MOMENTS if f"{name}.{k}" in header]
            known.update(f"{name}.{k}" for k in MOMENTS)
            if not keys:
                continue
            if set(keys) != set(MOMENTS):
                raise CheckpointError(f"{file}: incomplete AdamW state for {name}: has {sorted(keys)}")
            entry = {}
            for key in ("exp_avg", "exp_avg_sq"):
                shape = header[f"{name}.{key}"][0]
                if shape != tuple(p.shape):
                    raise CheckpointError(f"{file}: {name}.{key} has shape {shape}, parameter is {tuple(p.shape)}")
                entry[key] = torch.zeros_like(p.detach())  # a DTensor sharded like p
            state[p] = entry
            targets.update({f"{name}.{k}": v for k, v in entry.items()})
    if state:
        # The replicated "step" scalars: every rank reads them whole (bytes each).
        with safe_open(str(file), framework="pt") as fh:
            for p, entry in state.items():
                entry["step"] = fh.get_tensor(f"{names[id(p)]}.step")
    unexpected = sorted(set(header) - known)
    if unexpected:
        raise CheckpointError(f"{file}: tensors for unknown parameters: {unexpected[:5]}")
    return targets, state


def load_sharded(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, *,
                 rng: bool = True) -> dict[str, Any]:
    """Every rank reads only its slices of the weights and of the AdamW moments (one DCP load
    through the HF reader), whatever world size or parallelism wrote the checkpoint."""
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path}: not found")
    st = read_state(path)
    model_sd = _model_state(model)
    _check_model_header(path / MODEL_FILE, model_sd)
    opt_sd, opt_state = _optimizer_targets(path / OPTIMIZER_FILE, model, optimizer) if optimizer is not None else ({}, {})
    rng_t = S.read_safetensors(path / RNG_FILE) if rng else None
    # The HF reader plans from the headers of the directory's *.safetensors (model, optimizer,
    # rng: their names never collide) and reads each rank's slices with safe_open().get_slice.
    try:
        dcp.load({**model_sd, **opt_sd}, storage_reader=HuggingFaceStorageReader(str(path)))
    except (CheckpointException, SafetensorError, OSError, RuntimeError, ValueError) as exc:
        # DCP gathers every rank's failure and raises on all of them: all ranks exit together.
        raise CheckpointError(f"checkpoint {path}: reading this rank's slices of its *.safetensors failed: "
                              f"{str(exc).strip()[:500]}") from None
    local = {k: (v.to_local() if isinstance(v, DTensor) else v) for k, v in model_sd.items()}
    if any_flag(nonfinite_tensor(local) is not None, DistInfo(dist.get_rank(), dist.get_world_size())):
        check_file_finite(path)  # raises, naming the tensor and the newest finite checkpoint
    if optimizer is not None:
        # AdamW's own layout: per-parameter state, moments shaped (and here sharded) like p.
        optimizer.state.clear()
        optimizer.state.update(opt_state)
    if rng_t is not None:
        S.restore_rng(rng_t)
    return st


__all__ = ["load", "load_sharded", "refuse_unreshardable", "refuse_unreshardable_branch", "save", "save_sharded",
           "with_metadata"]
