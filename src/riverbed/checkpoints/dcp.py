"""torch distributed-checkpoint (DCP) folders as merge / eval inputs, read without torch.

A DCP folder (what ``torch.distributed.checkpoint.save`` writes; torchtitan and OLMo-core save
this way) holds ``.metadata`` -- a pickle of DCP's ``Metadata``: per tensor its dtype, shape and
chunks, and per chunk the ``.distcp`` file, byte offset and length that hold it -- and the
``__<rank>_<i>.distcp`` data files, in which every chunk is a small ``torch.save`` zip archive
(DCP's default), or which are safetensors files keyed by fqn (``SerializationFormat.SAFETENSORS``).

``.metadata`` is read by :class:`MetadataUnpickler`, an allowlist unpickler that admits only
DCP's own metadata types (and ``torch.Size``, the dtypes, ``pathlib`` paths, ``OrderedDict``) and
builds inert stand-ins for them: anything else -- a class or function some other code put in
the file -- is refused, naming it, before it could run. Each chunk's zip archive is parsed here
too: its ``data.pkl`` (through the same kind of allowlist) gives the storage's dtype, offset,
shape and strides, its zip directory the absolute file offset of the raw storage bytes. A
contiguous chunk is then streamed from that offset like a safetensors tensor; a tensor cut into
several chunks that are each a flat range of it (FSDP's row shards) is streamed piece by piece;
anything else (a strided view, column shards) is assembled in memory with numpy, one tensor at
a time.

Which entries are weights: tensor entries, except the training state beside them -- the
sections ``optimizer.*`` (torchtitan), ``optim.*`` (OLMo-core), ``lr_scheduler.*``,
``dataloader.*``, ``train_state.*`` (torchtitan's step counter) and ``rng.*`` -- and non-tensor
(bytes) entries. Where a checkpoint saved ``{"model": ..., "optim": ...}`` (every weight name
starts with ``model.`` and training-state entries exist), the ``model.`` prefix is dropped, so the
names are the model's own.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from riverbed.errors import CheckpointError
from riverbed.checkpoints.entries import DTYPES, Source, TensorEntry

METADATA = ".metadata"
HeaderReader = Callable[[Path], tuple[dict[str, TensorEntry], dict[str, str]]]
TRAINING_STATE = ("optimizer.", "optim.", "lr_scheduler.", "lr_schedulers.", "scheduler.", "dataloader.", "train_state.", "rng.")
_META = "torch.distributed.checkpoint.metadata"
_META_TYPES = ("Metadata", "TensorStorageMetadata", "BytesStorageMetadata", "ChunkStorageMetadata", "TensorProperties",
               "MetadataIndex", "StorageMeta")
_STORAGE_INFO = ("torch.distributed.checkpoint.filesystem", "_StorageInfo")
# torch dtype name -> safetensors dtype name
TORCH_DTYPES = {v[0]: k for k, v in DTYPES.items()}
# torch.save's legacy storage class names (data.pkl) -> safetensors dtype name
STORAGES = {"FloatStorage": "F32", "DoubleStorage": "F64", "HalfStorage": "F16", "BFloat16Storage": "BF16",
            "LongStorage": "I64", "IntStorage": "I32", "ShortStorage": "I16", "CharStorage": "I8", "ByteStorage": "U8",
            "BoolStorage": "BOOL", "Float8_e4m3fnStorage": "F8_E4M3", "Float8_e5m2Storage": "F8_E5M2"}
# an unsigned integer type of each element size: strided copies move bytes, whatever the dtype
_ELEM = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


class Record:
    """An inert stand-in for one of DCP's metadata objects: only its pickled state, as attributes."""

    kind = "Record"

    def __setstate__(self, state: object) -> None:
        if isinstance(state, tuple) and len(state) == 2 and all(s is None or isinstance(s, dict) for s in state):
            state = {**(state[0] or {}), **(state[1] or {})}  # (dict, slots) of a class with __slots__
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.state = state  # TensorProperties pickles a tuple (dtype, layout, requires_grad, ...)


_STANDINS: dict[tuple[str, str], object] = {(_META, n): type(n, (Record,), {"kind": n}) for n in _META_TYPES}
_STANDINS[_STORAGE_INFO] = type("_StorageInfo", (Record,), {"kind": "_StorageInfo"})
_STANDINS[(_META, "_MEM_FORMAT_ENCODING")] = int
_STANDINS[("torch", "Size")] = tuple
_STANDINS[("torch.serialization", "_get_layout")] = str  # "torch.strided"
_STANDINS[("collections", "OrderedDict")] = dict
for _cls in ("PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath", "Path"):
    _STANDINS[("pathlib", _cls)] = lambda *parts: str(PurePosixPath(*parts))  # StorageMeta.checkpoint_id
for _name in TORCH_DTYPES:
    _STANDINS[("torch", _name)] = f"torch.{_name}"


class MetadataUnpickler(pickle.Unpickler):
    """Unpickles DCP's ``.metadata`` into :class:`Record` stand-ins; any other global is refused."""

    def __init__(self, file: io.BufferedIOBase, path: Path) -> None:
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _STANDINS:
            return _STANDINS[(module, name)]
        raise CheckpointError(f"{self.path}: refusing to unpickle {module}.{name}: a DCP .metadata file may hold only "
                              "torch.distributed.checkpoint's own metadata types")


@dataclass(frozen=True)
class _Storage:
    dtype: str
    key: str
    numel: int


@dataclass(frozen=True)
class _Tensor:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild(storage: object, offset: object, shape: object, stride: object, *_rest: object) -> _Tensor:
    return _Tensor(storage, offset, tuple(shape), tuple(stride))  # type: ignore[arg-type]


class _ChunkUnpickler(pickle.Unpickler):
    """The ``data.pkl`` of one ``torch.save``'d tensor: where its storage is and how it is laid out."""

    def __init__(self, file: io.BufferedIOBase, where: str) -> None:
        super().__init__(file)
        self.where = where

    def find_class(self, module: str, name: str) -> object:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild
        if module == "torch" and name in STORAGES:
            return STORAGES[name]
        if module == "collections" and name == "OrderedDict":
            return dict
        raise CheckpointError(f"{self.where}: refusing to unpickle {module}.{name}: a DCP tensor chunk holds one plain tensor")

    def persistent_load(self, pid: object) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and pid[1] in STORAGES.values()):
            raise CheckpointError(f"{self.where}: unexpected storage reference {pid!r}")
        return _Storage(pid[1], str(pid[2]), int(pid[4]))


class _Window(io.RawIOBase):
    """A read-only, seekable view of bytes [start, start+length) of a file (for zipfile)."""

    def __init__(self, fh: io.BufferedReader, start: int, length: int) -> None:
        self.fh, self.start, self.length, self.pos = fh, start, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = 0) -> int:
        self.pos = {0: pos, 1: self.pos + pos, 2: self.length + pos}[whence]
        return self.pos

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        n = max(0, min(len(b), self.length - self.pos))
        self.fh.seek(self.start + self.pos)
        data = self.fh.read(n)
        b[: len(data)] = data
        self.pos += len(data)
        return len(data)


def read_metadata(folder: Path) -> Record:
    """DCP's ``Metadata`` of ``folder`` as a :class:`Record`, read by :class:`MetadataUnpickler` (an allowlist of
    DCP's own metadata types; any other global is a CheckpointError naming it, and nothing is ever executed)."""
    path = folder / METADATA
    try:
        with open(path, "rb") as fh:
            md = MetadataUnpickler(fh, path).load()
    except CheckpointError:
        raise
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read DCP metadata: {exc.strerror or exc}") from exc
    except Exception as exc:  # noqa: BLE001 - any other failure of a foreign pickle is a corrupt file
        raise CheckpointError(f"{path}: corrupt DCP metadata ({type(exc).__name__}: {exc})") from exc
    if getattr(md, "kind", None) != "Metadata" or not isinstance(getattr(md, "state_dict_metadata", None), dict) \
            or not isinstance(getattr(md, "storage_data", None), dict):
        raise CheckpointError(f"{path}: not a DCP Metadata object (state_dict_metadata / storage_data missing)")
    return md


#: A chunk up to this size is read whole and parsed in memory: a zip archive's parse makes a dozen small
#: reads, each a seek on the file through :class:`_Window` (a checkpoint of many small tensors pays them
#: thousands of times); a larger chunk is parsed in place, its tensor bytes never read here.
SMALL_CHUNK = 1 << 20


def _chunk_tensor(fh: io.BufferedReader, file: Path, start: int, length: int, where: str) -> tuple[int, _Tensor]:
    """(absolute offset of the storage bytes, the tensor's layout) of one torch.save'd chunk."""
    try:
        if length <= SMALL_CHUNK:
            fh.seek(start)
            raw = fh.read(length)
            if len(raw) != length:
                raise CheckpointError(f"{where}: truncated chunk ({len(raw)} of {length} bytes)")
            view: io.IOBase = io.BytesIO(raw)
        else:
            view = _Window(fh, start, length)
        zf = zipfile.ZipFile(view)
        names = {i.filename: i for i in zf.infolist()}
        pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise CheckpointError(f"{where}: not a torch.save archive (no data.pkl)")
        prefix = pkl[: -len("data.pkl")]
        if prefix + "byteorder" in names and zf.read(prefix + "byteorder") != b"little":
            raise CheckpointError(f"{where}: big-endian tensor data is not supported")
        t = _ChunkUnpickler(io.BytesIO(zf.read(pkl)), where).load()
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken archive in a foreign file is a user error
        raise CheckpointError(f"{where}: corrupt tensor chunk ({type(exc).__name__}: {exc})") from exc
    if not isinstance(t, _Tensor):
        raise CheckpointError(f"{where}: the chunk holds a {type(t).__name__}, not a tensor")
    info = names.get(f"{prefix}data/{t.storage.key}")
    if info is None or info.compress_type != zipfile.ZIP_STORED:
        raise CheckpointError(f"{where}: storage {t.storage.key!r} is missing or compressed")
    if info.file_size != t.storage.numel * DTYPES[t.storage.dtype][1]:
        raise CheckpointError(f"{where}: storage {t.storage.key!r} holds {info.file_size} bytes, not {t.storage.numel} elements")
    fh.seek(start + info.header_offset)
    head = fh.read(30)
    if len(head) != 30 or head[:4] != b"PK\x03\x04":
        raise CheckpointError(f"{where}: corrupt zip entry for storage {t.storage.key!r}")
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    return start + info.header_offset + 30 + name_len + extra_len, t


def _check_extent(t: _Tensor, where: str) -> None:
    """Every element the layout addresses lies inside the storage (a strided view reads no further)."""
    if len(t.stride) != len(t.shape) or t.offset < 0 or any(s < 0 for s in t.stride):
        raise CheckpointError(f"{where}: invalid tensor layout (offset {t.offset}, stride {list(t.stride)})")
    if math.prod(t.shape) and t.offset + sum((n - 1) * s for n, s in zip(t.shape, t.stride)) >= t.storage.numel:
        raise CheckpointError(f"{where}: the tensor's layout reaches beyond its storage of {t.storage.numel} elements")


def _contiguous(shape: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    expect = 1
    for n, s in zip(reversed(shape), reversed(stride)):
        if n != 1 and s != expect:
            return False
        expect *= n
    return True


def _flat_start(offsets: tuple[int, ...], sizes: tuple[int, ...], shape: tuple[int, ...]) -> int | None:
    """The flat index where a chunk starts if it is one contiguous range of the tensor, else None."""
    last = max((i for i in range(len(shape)) if sizes[i] != shape[i]), default=-1)
    if any(sizes[i] != 1 for i in range(last)):
        return None
    return sum(o * math.prod(shape[i + 1:]) for i, o in enumerate(offsets))


def _plain_name(folder: Path, rel: object, where: str) -> Path:
    if not isinstance(rel, str) or rel in ("", ".", "..") or "/" in rel or "\\" in rel or "\0" in rel:
        raise CheckpointError(f"{where}: names data file {rel!r}, which is not a plain file name in {folder}")
    path = folder / rel
    real = Path(os.path.realpath(path))
    if Path(os.path.realpath(folder)) not in real.parents:
        raise CheckpointError(f"{where}: data file {rel!r} is a link that leads outside {folder}")
    if not path.is_file():
        raise CheckpointError(f"{where}: data file {path} is missing")
    return path


def _weight_names(md: Record) -> dict[str, str]:
    """{DCP fqn: weight name} of the entries that are model weights (see the module docstring)."""
    tensors = [k for k, v in md.state_dict_metadata.items() if getattr(v, "kind", None) == "TensorStorageMetadata"]
    state = [k for k in md.state_dict_metadata if k.startswith(TRAINING_STATE)]
    weights = [k for k in tensors if not k.startswith(TRAINING_STATE)]
    strip = bool(state) and bool(weights) and all(k.startswith("model.") for k in weights)
    return {k: k[len("model."):] if strip else k for k in weights}


def _safetensors_tensors(file: Path, read_header: HeaderReader, cache: dict[Path, dict[str, TensorEntry] | None]
                         ) -> dict[str, TensorEntry] | None:
    """The tensors of a data file DCP wrote as a safetensors file (its SAFETENSORS serialisation:
    keyed by fqn, the chunk offsets in the header metadata), else None (torch.save chunks)."""
    if file not in cache:
        with open(file, "rb") as fh:
            head = fh.read(9)
        # a torch.save chunk starts with a zip header ("PK"); a safetensors file with its header length and "{"
        looks = len(head) == 9 and head[:2] != b"PK" and head[8:9] == b"{"
        cache[file] = read_header(file)[0] if looks else None
    return cache[file]


def open_dcp(folder: Path, label: str, read_header: HeaderReader) -> Source:
    """A DCP folder as a merge :class:`Source` (see the module docstring); ``read_header`` parses
    a safetensors header (the data files of DCP's safetensors serialisation)."""
    md = read_metadata(folder)
    meta_path = folder / METADATA
    by_chunk: dict[tuple[str, tuple[int, ...]], Record] = {}
    for idx, info in md.storage_data.items():
        if getattr(idx, "kind", None) != "MetadataIndex" or getattr(info, "kind", None) != "_StorageInfo" \
                or not isinstance(getattr(idx, "fqn", None), str):
            raise CheckpointError(f"{meta_path}: corrupt storage_data entry {vars(idx)!r}")
        offset = getattr(idx, "offset", None)  # None (and left out of the pickle) for bytes entries
        by_chunk[(idx.fqn, tuple(offset or ()))] = info
    tensors: dict[str, TensorEntry] = {}
    loaded: dict[str, np.ndarray] = {}
    files: dict[Path, None] = {}
    handles: dict[Path, io.BufferedReader] = {}
    st_cache: dict[Path, dict[str, TensorEntry] | None] = {}
    names: dict[object, Path] = {}  # relative_path -> its checked data file (a few files hold every chunk)
    sizes_of: dict[Path, int] = {}
    try:
        for fqn, name in _weight_names(md).items():
            where = f"{folder}: tensor {fqn!r}"
            tm = md.state_dict_metadata[fqn]
            props = tm.properties
            torch_dtype = props.state[0] if hasattr(props, "state") else getattr(props, "dtype", None)
            layout = props.state[1] if hasattr(props, "state") else getattr(props, "layout", "torch.strided")
            dtype = TORCH_DTYPES.get(str(torch_dtype).removeprefix("torch."))
            if dtype is None or layout != "torch.strided":
                raise CheckpointError(f"{where} has dtype {torch_dtype} / layout {layout}, which merging does not support")
            shape = tuple(int(d) for d in tm.size)
            pieces, chunks_loaded = [], []
            for chunk in tm.chunks:
                offsets, sizes = tuple(chunk.offsets), tuple(chunk.sizes)
                info = by_chunk.get((fqn, offsets))
                if info is None:
                    raise CheckpointError(f"{meta_path}: no storage recorded for chunk {list(offsets)} of tensor {fqn!r}")
                if getattr(info, "transform_descriptors", None):
                    raise CheckpointError(f"{where} is stored transformed ({info.transform_descriptors}), which is not supported")
                rel = info.relative_path
                file = names[rel] if isinstance(rel, str) and rel in names else names.setdefault(rel, _plain_name(folder, rel, where))
                files[file] = None
                fh = handles.get(file) or handles.setdefault(file, open(file, "rb"))
                start, length = int(info.offset), int(info.length)
                if file not in sizes_of:
                    sizes_of[file] = file.stat().st_size
                if start < 0 or start + length > sizes_of[file]:
                    raise CheckpointError(f"{where}: chunk bytes [{start}, {start + length}) lie beyond the end of {file}")
                count = math.prod(sizes)
                st = _safetensors_tensors(file, read_header, st_cache)
                if st is not None:  # DCP's safetensors serialisation: the tensor is the file's entry named fqn
                    e = st.get(fqn)
                    if e is None or e.dtype != dtype or e.shape != sizes:
                        got = "no such tensor" if e is None else f"{e.dtype} {list(e.shape)}"
                        raise CheckpointError(f"{where}: its data file {file.name} holds {got}, but the metadata says {dtype} {list(sizes)}")
                    data_at, t, layout_ok = e.offset, _Tensor(_Storage(dtype, "", count), 0, sizes, ()), True
                else:  # DCP's default: a torch.save archive of the chunk at [offset, offset + length)
                    data_at, t = _chunk_tensor(fh, file, start, length, f"{where} (chunk {list(offsets)} in {file.name})")
                    if t.storage.dtype != dtype or t.shape != sizes:
                        raise CheckpointError(f"{where}: chunk {list(offsets)} holds {t.storage.dtype} {list(t.shape)}, "
                                              f"but the metadata says {dtype} {list(sizes)}")
                    _check_extent(t, where)
                    layout_ok = _contiguous(t.shape, t.stride)
                flat = _flat_start(offsets, sizes, shape)
                size = DTYPES[dtype][1]
                if layout_ok and flat is not None:
                    pieces.append((flat, file, data_at + t.offset * size, count))
                chunks_loaded.append((offsets, sizes, file, data_at, t))
            numel = math.prod(shape)
            pieces.sort(key=lambda p: p[0])
            tiled = len(pieces) == len(chunks_loaded) and [p[0] for p in pieces] == list(np.cumsum([0] + [p[3] for p in pieces])[:-1]) \
                and sum(p[3] for p in pieces) == numel
            nbytes = numel * DTYPES[dtype][1]
            if tiled and pieces:
                tensors[name] = TensorEntry(name, dtype, shape, pieces[0][1], pieces[0][2], nbytes, tuple(pieces) if len(pieces) > 1 else ())
            else:  # strided or not a flat tiling: assemble this one tensor in memory
                loaded[name] = _assemble(handles, dtype, shape, chunks_loaded, where)
                tensors[name] = TensorEntry(name, dtype, shape, chunks_loaded[0][2] if chunks_loaded else meta_path, -1, nbytes)
    finally:
        for fh in handles.values():
            fh.close()
    if not tensors:
        raise CheckpointError(f"{folder}: the DCP checkpoint holds no model weights (only optimizer or non-tensor entries)")
    return Source(label, "dcp", tensors, list(files), folder, loaded or None)


def _assemble(handles: dict[Path, io.BufferedReader], dtype: str, shape: tuple[int, ...],
              chunks: list[tuple[tuple[int, ...], tuple[int, ...], Path, int, _Tensor]], where: str) -> np.ndarray:
    size = DTYPES[dtype][1]
    elem = _ELEM[size]
    full = np.zeros(shape, dtype=elem)
    covered = 0
    for offsets, sizes, file, data_at, t in chunks:
        fh = handles[file]
        fh.seek(data_at)
        raw = np.frombuffer(fh.read(t.storage.numel * size), dtype=elem)
        if raw.size != t.storage.numel:
            raise CheckpointError(f"{where}: truncated chunk in {file}")
        if t.stride:
            view = np.lib.stride_tricks.as_strided(raw[t.offset:], shape=t.shape, strides=[s * size for s in t.stride], writeable=False)
        else:
            view = raw.reshape(t.shape)
        full[tuple(slice(o, o + s) for o, s in zip(offsets, sizes))] = view
        covered += math.prod(sizes)
    if covered != math.prod(shape):
        raise CheckpointError(f"{where}: its chunks cover {covered} of {math.prod(shape)} elements")
    return full.reshape(-1)
