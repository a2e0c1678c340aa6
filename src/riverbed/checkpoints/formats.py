"""Merge inputs: what is on disk, read from the headers alone, and how to read a chunk of it.

Supported inputs (resolved by :func:`open_input`):

* a riverbed checkpoint directory (``model.safetensors`` + ``state.json``),
* a Hugging Face model directory, single-file (``model.safetensors``) or sharded
  (``model.safetensors.index.json`` naming ``model-0000i-of-0000n.safetensors``),
* a single ``.safetensors`` file (or an ``*.safetensors.index.json`` file),
* a torch distributed-checkpoint (DCP) folder (``.metadata`` + ``*.distcp``: torchtitan,
  OLMo-core), streamed from its data files by offset (:mod:`riverbed.checkpoints.dcp`),
* import only: ``pytorch_model.bin`` (or its shards with ``pytorch_model.bin.index.json``) and a
  nanoGPT ``ckpt.pt`` (its ``model`` entry, without the ``_orig_mod.`` prefix ``torch.compile``
  adds), read with ``torch.load(weights_only=True, mmap=True)``. Those are converted on the fly
  and not streamed from the file by offset: their tensors are memory-mapped by torch, not preadv'd.

A safetensors file is ``u64 little-endian header length`` + ``JSON header`` + raw data. The
header is parsed here, by hand, so that planning a merge touches no tensor data, and data is
read later by absolute file offset (``os.preadv`` into a reused buffer).
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from riverbed.errors import CheckpointError
from riverbed.checkpoints.dcp import METADATA as DCP_METADATA, open_dcp
from riverbed.checkpoints.entries import DTYPES, FLOAT_DTYPES, Source, TensorEntry

__all__ = ["DTYPES", "FLOAT_DTYPES", "Source", "TensorEntry", "load_tensors", "open_input", "read_header", "read_index", "read_span"]

MAX_HEADER = 100_000_000  # the safetensors library's own limit (MAX_HEADER_SIZE)


def _strict_constant(name: str) -> None:
    # JSON has no NaN / Infinity; Python's json module accepts them, the safetensors library does not.
    raise ValueError(f"{name} is not valid JSON")


def _uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read_header(path: str | os.PathLike[str]) -> tuple[dict[str, TensorEntry], dict[str, str]]:
    """Parse and validate a safetensors header: ``({name: TensorEntry}, metadata)``.

    As strict as the format specification and the ``safetensors`` library (``safe_open``): a
    header length within the file, a UTF-8 strict-JSON object, ``__metadata__`` a map of strings,
    for every tensor a known dtype, a shape of non-negative integers and two integer data
    offsets whose span is ``prod(shape) * itemsize``; sorted by offset the tensors tile the data
    exactly, from byte 0 to the end of the file, with no gap, overlap or trailing bytes.
    Raises :class:`CheckpointError` naming the file (and tensor) otherwise.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{path}: truncated safetensors file ({size} bytes, no header length)")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER:
                raise CheckpointError(f"{path}: safetensors header of {n} bytes is larger than the {MAX_HEADER}-byte limit "
                                      "safetensors itself enforces; corrupt, or not a safetensors file")
            if 8 + n > size:
                raise CheckpointError(f"{path}: corrupt or truncated safetensors file: header length {n} is beyond the file size {size}")
            raw = fh.read(n)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read safetensors file: {exc.strerror or exc}") from exc
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=_strict_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path}: corrupt safetensors header (not JSON: {exc})") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", None)
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path}: corrupt safetensors header: __metadata__ must map names to strings, got {metadata!r}")
    data_start = 8 + n
    data_len = size - data_start
    entries = []
    for name, info in header.items():
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise CheckpointError(f"{path}: corrupt safetensors header entry for tensor {name!r}: {info!r}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise CheckpointError(f"{path}: tensor {name!r} has unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_uint(d) for d in shape):
            raise CheckpointError(f"{path}: tensor {name!r} has shape {shape!r}: expected a list of non-negative integers")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_uint(o) for o in offsets):
            raise CheckpointError(f"{path}: tensor {name!r} has data_offsets {offsets!r}: expected two non-negative integers")
        begin, end = offsets
        nbytes = math.prod(shape) * DTYPES[dtype][1]
        if end - begin != nbytes:
            raise CheckpointError(f"{path}: tensor {name!r} data_offsets {[begin, end]} do not match its shape {list(shape)} and dtype {dtype}")
        if end > data_len:
            raise CheckpointError(f"{path}: truncated safetensors file: tensor {name!r} data_offsets end at {data_start + end}, beyond the file size {size}")
        entries.append(TensorEntry(name, dtype, tuple(shape), path, data_start + begin, nbytes))
    entries.sort(key=lambda e: (e.offset, e.nbytes))  # file order: sequential reads
    expected = data_start
    for e in entries:  # the tensors must tile the data exactly (the library's own check)
        if e.offset != expected:
            how = "overlaps the previous tensor" if e.offset < expected else "leaves a gap after the previous tensor"
            raise CheckpointError(f"{path}: corrupt safetensors header: tensor {e.name!r} at data offset {e.offset - data_start} {how} "
                                  f"(which ends at {expected - data_start})")
        expected = e.offset + e.nbytes
    if expected != size:
        raise CheckpointError(f"{path}: corrupt safetensors file: {size - expected} byte(s) after the last tensor are not covered by the header")
    return {e.name: e for e in entries}, dict(metadata)


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def read_index(index: Path) -> dict[str, str]:
    """``{tensor: shard file name}`` of a ``*.index.json``, every shard name checked: a plain file
    name in the index's directory that, after resolving symbolic links, stays inside it (the
    Hugging Face hub cache's ``snapshots/<rev>/x -> ../../blobs/<hash>`` links are allowed).
    A name such as ``../x.safetensors`` or ``/etc/passwd`` is refused before anything is opened.
    """
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
        weight_map = data["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{index}: unreadable checkpoint index ({exc})") from exc
    root = index.parent
    real_root = Path(os.path.realpath(root))
    hub_blobs = real_root.parent.parent / "blobs" if real_root.parent.name == "snapshots" else None
    checked: dict[str, bool] = {}
    for tensor, shard in weight_map.items():
        if shard in checked:
            continue
        if (not isinstance(shard, str) or shard in ("", ".", "..") or "/" in shard or "\\" in shard or "\0" in shard
                or os.path.isabs(shard)):
            raise CheckpointError(f"{index}: weight_map entry {tensor!r} names shard {shard!r}, which is not a plain file name in {root}")
        real = Path(os.path.realpath(root / shard))
        if not _within(real, real_root) and not (hub_blobs is not None and _within(real, hub_blobs)):
            raise CheckpointError(f"{index}: weight_map entry {tensor!r} names shard {shard!r}, a link that leads outside {root}")
        checked[shard] = True
    return dict(weight_map)


def _open_sharded(index: Path, label: str, directory: Path | None) -> Source:
    weight_map = read_index(index)
    tensors: dict[str, TensorEntry] = {}
    files: list[Path] = []
    for shard_name in dict.fromkeys(weight_map.values()):
        shard = index.parent / shard_name
        if not shard.is_file():
            raise CheckpointError(f"{index}: names shard {shard_name!r}, which is missing ({shard})")
        files.append(shard)
        entries, _ = read_header(shard)
        for name, entry in entries.items():
            if weight_map.get(name) == shard_name:
                tensors[name] = entry
    missing = [n for n in weight_map if n not in tensors]
    if missing:
        raise CheckpointError(f"{index}: tensor {missing[0]!r} is not in its shard {index.parent / weight_map[missing[0]]}")
    return Source(label, "hf", tensors, files, directory)


NANOGPT_PREFIX = "_orig_mod."  # torch.compile's wrapper module, in the names nanoGPT saves when compile=True


def _state_dict_of(obj: object, path: Path) -> tuple[dict, str]:
    """The state dict a torch.load'ed object holds: itself, or a nanoGPT checkpoint's ``model``."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(obj).__name__}")
    model = obj.get("model")
    if isinstance(model, dict) and not all(type(v).__name__ in ("Tensor", "Parameter") for v in obj.values()):
        # a nanoGPT ckpt.pt: {"model", "optimizer", "model_args", "iter_num", "best_val_loss", "config"}
        return {k.removeprefix(NANOGPT_PREFIX): v for k, v in model.items()}, "nanogpt"
    return obj, "bin"


def _open_bin(paths: list[Path], label: str, directory: Path | None) -> Source:
    import torch  # lazy: loads torch, which importing this module must not

    tensors: dict[str, TensorEntry] = {}
    loaded: dict[str, Any] = {}
    names = {getattr(torch, v[0]): k for k, v in DTYPES.items()}
    kind = "bin"
    for path in paths:
        try:
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:  # legacy (non-zip) format cannot be memory-mapped
                obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure of a foreign file is a user error
            raise CheckpointError(f"{path}: cannot load as a weights-only torch checkpoint: {exc}") from exc
        sd, kind = _state_dict_of(obj, path)
        for name, t in sd.items():
            if not isinstance(t, torch.Tensor) or t.dtype not in names:
                where = "entry" if kind == "bin" else "model entry"
                raise CheckpointError(f"{path}: {where} {name!r} is not a tensor of a supported dtype")
            flat = t.contiguous().reshape(-1)
            loaded[name] = flat
            dtype = names[t.dtype]
            tensors[name] = TensorEntry(name, dtype, tuple(t.shape), path, -1, flat.numel() * DTYPES[dtype][1])
    return Source(label, kind, tensors, list(paths), directory, loaded)


def read_span(entry: TensorEntry, start: int, count: int, view: memoryview, fd_of: Callable[[Path], int]) -> None:
    """Read elements [start, start+count) of an offset-stored ``entry`` into ``view`` (bytes),
    from its one range or from the pieces that cover the span."""
    size = DTYPES[entry.dtype][1]
    pieces = entry.pieces or ((0, entry.file, entry.offset, entry.numel),)
    end = start + count
    for first, file, offset, n in pieces:
        lo, hi = max(start, first), min(end, first + n)
        if lo >= hi:
            continue
        part, pos, done = view[(lo - start) * size:(hi - start) * size], offset + (lo - first) * size, 0
        while done < len(part):
            got = os.preadv(fd_of(file), [part[done:]], pos + done)
            if got <= 0:
                raise CheckpointError(f"{file}: truncated while reading tensor {entry.name!r} (the file changed after planning?)")
            done += got


def load_tensors(src: Source) -> dict[str, Any]:
    """Every tensor of ``src`` as a torch tensor of its own dtype and shape, read through the same
    offsets and pieces as a merge (what ``riverbed eval`` loads a checkpoint with)."""
    import torch  # lazy: loads torch, which importing this module must not

    fds: dict[Path, int] = {}
    out: dict[str, Any] = {}
    try:
        for name, e in src.tensors.items():
            dtype = getattr(torch, DTYPES[e.dtype][0])
            if e.offset < 0:
                flat = src.loaded[name] if src.loaded is not None else None
                t = torch.from_numpy(flat.copy()).view(dtype) if isinstance(flat, np.ndarray) else flat
            else:
                raw = bytearray(e.nbytes)
                read_span(e, 0, e.numel, memoryview(raw), lambda f: fds[f] if f in fds else fds.setdefault(f, os.open(f, os.O_RDONLY)))
                t = torch.frombuffer(raw, dtype=torch.uint8).view(dtype) if e.nbytes else torch.empty(0, dtype=dtype)
            out[name] = t.reshape(e.shape)
    finally:
        for fd in fds.values():
            os.close(fd)
    return out


def open_input(path: str | os.PathLike[str]) -> Source:
    """Resolve one merge input (file or directory) to a :class:`Source`, reading headers only.

    >>> # open_input("ckpts/step_0000001000").tensors["lm_head.weight"].shape
    """
    p = Path(path)
    label = str(path)
    if p.is_file():
        if p.name.endswith(".safetensors.index.json"):
            return _open_sharded(p, label, None)
        if p.name.endswith(".bin.index.json"):
            shards = [p.parent / s for s in dict.fromkeys(read_index(p).values())]
            for s in shards:
                if not s.is_file():
                    raise CheckpointError(f"{p}: names shard {s.name!r}, which is missing ({s})")
            return _open_bin(shards, label, None)
        if p.suffix == ".safetensors":
            tensors, _ = read_header(p)
            return Source(label, "safetensors", tensors, [p])
        if p.name == DCP_METADATA:
            return open_input(p.parent)
        if p.suffix in (".bin", ".pt", ".pth"):
            return _open_bin([p], label, None)
        raise CheckpointError(f"{p}: not a checkpoint (expected .safetensors, .bin, .pt, a DCP .metadata or a model directory)")
    if p.is_dir():
        if (p / "model.safetensors.index.json").is_file():
            return _open_sharded(p / "model.safetensors.index.json", label, p)
        if (p / "model.safetensors").is_file():
            tensors, _ = read_header(p / "model.safetensors")
            kind = "riverbed" if (p / "state.json").is_file() else "hf"
            return Source(label, kind, tensors, [p / "model.safetensors"], p)
        if (p / "pytorch_model.bin.index.json").is_file():
            src = open_input(p / "pytorch_model.bin.index.json")
            return Source(label, "bin", src.tensors, src.files, p, src.loaded)
        if (p / "pytorch_model.bin").is_file():
            return _open_bin([p / "pytorch_model.bin"], label, p)
        if (p / DCP_METADATA).is_file():
            return open_dcp(p, label, read_header)
        if (p / "ckpt.pt").is_file():  # a nanoGPT out_dir
            return _open_bin([p / "ckpt.pt"], label, p)
        raise CheckpointError(
            f"{p}: no weights found (looked for model.safetensors, model.safetensors.index.json, "
            "pytorch_model.bin, pytorch_model.bin.index.json, a DCP .metadata, a nanoGPT ckpt.pt)"
        )
    raise CheckpointError(f"{p}: merge input does not exist")
