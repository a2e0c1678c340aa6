"""Plan a merge from the inputs' headers alone: check that names, shapes and dtypes agree,
choose output dtypes, lay out the output shards (header bytes and every tensor's offset) and
check the free disk space. Nothing here reads tensor data.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from riverbed.errors import ConfigError, MergeError
from riverbed.checkpoints.formats import DTYPES, FLOAT_DTYPES, Source, TensorEntry
from riverbed.merging.weights import format_weights
from riverbed.units import parse_bytes

OUT_DTYPES = {"bf16": "BF16", "fp16": "F16", "fp32": "F32", "bfloat16": "BF16", "float16": "F16", "float32": "F32"}
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


def parse_size(text: str | int) -> int:
    """``"5GB"`` -> 5_000_000_000 (Hugging Face convention: GB = 10^9, GiB = 2^30).

    >>> parse_size("5GB"), parse_size("1GiB"), parse_size(1024)
    (5000000000, 1073741824, 1024)
    """
    try:
        return parse_bytes(text, field="max shard size")  # the one number parser (riverbed.units)
    except ConfigError as exc:
        raise MergeError(str(exc)) from None


@dataclass(frozen=True)
class OutTensor:
    """One output tensor: its inputs (one entry per input, oldest first) and where it goes."""

    name: str
    shape: tuple[int, ...]
    in_dtype: str
    out_dtype: str
    sources: tuple[TensorEntry, ...]
    shard: int
    offset: int  # absolute byte offset in the shard file
    merged: bool  # False: a non-float tensor, copied from the newest input

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * DTYPES[self.out_dtype][1]


@dataclass(frozen=True)
class Shard:
    filename: str
    header: bytes  # u64 length + JSON header, padded to 8 bytes
    size: int  # total file size
    tensors: tuple[OutTensor, ...]


@dataclass(frozen=True)
class MergePlan:
    labels: tuple[str, ...]
    weights: tuple[float, ...]
    tensors: tuple[OutTensor, ...]
    shards: tuple[Shard, ...]
    metadata: dict[str, str]

    @property
    def out_bytes(self) -> int:
        return sum(s.size for s in self.shards)

    @property
    def in_bytes(self) -> int:
        """Bytes the merge reads: every input of a merged tensor with a non-zero weight."""
        n = 0
        for t in self.tensors:
            if t.merged:
                n += sum(e.nbytes for e, w in zip(t.sources, self.weights) if w != 0.0)
            else:
                n += t.sources[-1].nbytes
        return n

    def index(self) -> dict | None:
        """The Hugging Face index (``model.safetensors.index.json``) when sharded, else None."""
        if len(self.shards) == 1:
            return None
        weight_map = {t.name: self.shards[t.shard].filename for t in self.tensors}
        return {"metadata": {"total_size": sum(t.nbytes for t in self.tensors)}, "weight_map": weight_map}

    def describe(self) -> str:
        dtypes = sorted({f"{t.in_dtype}->{t.out_dtype}" for t in self.tensors})
        copied = [t.name for t in self.tensors if not t.merged]
        lines = [
            f"inputs: {len(self.labels)}   tensors: {len(self.tensors)}   dtypes: {', '.join(dtypes)}",
            f"read: {_human(self.in_bytes)}   write: {_human(self.out_bytes)} in {len(self.shards)} shard(s)",
        ]
        lines += [f"  {s.filename}  {_human(s.size)}  {len(s.tensors)} tensors" for s in self.shards]
        if copied:
            lines.append(f"non-float tensors copied from the newest input: {', '.join(copied[:5])}{' ...' if len(copied) > 5 else ''}")
        lines.append("weights (oldest first):")
        lines.append(format_weights(self.weights, self.labels))
        return "\n".join(lines)


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)  # pragma: no cover


def check_compatible(sources: Sequence[Source]) -> None:
    """Raise MergeError naming the tensor and the files when inputs disagree."""
    first = sources[0]
    names = list(first.tensors)
    for src in sources[1:]:
        missing = [n for n in names if n not in src.tensors]
        if missing:
            raise MergeError(f"tensor {missing[0]!r} is in {first.label} but missing from {src.label}")
        extra = [n for n in src.tensors if n not in first.tensors]
        if extra:
            raise MergeError(f"tensor {extra[0]!r} is in {src.label} but missing from {first.label}")
        for name in names:
            a, b = first.tensors[name], src.tensors[name]
            if a.shape != b.shape:
                raise MergeError(f"tensor {name!r} has shape {list(a.shape)} in {a.file} but {list(b.shape)} in {b.file}")
            if a.dtype != b.dtype:
                raise MergeError(f"tensor {name!r} has dtype {a.dtype} in {a.file} but {b.dtype} in {b.file}")


def build_plan(
    sources: Sequence[Source],
    weights: Sequence[float],
    *,
    dtype: str | None = None,
    max_shard_size: int = 5 * 10**9,
    metadata: dict[str, str] | None = None,
    single_file: str | None = None,
) -> MergePlan:
    """Lay out the output. ``dtype`` is bf16/fp16/fp32 (float tensors only) or None (keep the input's).
    ``single_file`` names the one output file (no sharding; used when OUT is a .safetensors path)."""
    if len(weights) != len(sources):
        raise MergeError(f"{len(weights)} weights for {len(sources)} inputs")
    check_compatible(sources)
    if dtype is not None and dtype not in OUT_DTYPES:
        raise MergeError(f"output dtype must be one of bf16, fp16, fp32; got {dtype!r}")
    out_dtype = OUT_DTYPES[dtype] if dtype else None
    metadata = {"format": "pt", **(metadata or {})}

    tensors: list[tuple[str, TensorEntry]] = list(sources[0].tensors.items())
    groups: list[list[OutTensor]] = [[]]
    sizes = [0]
    for name, entry in tensors:
        merged = entry.dtype in FLOAT_DTYPES
        od = out_dtype if (merged and out_dtype) else entry.dtype
        t = OutTensor(name, entry.shape, entry.dtype, od, tuple(s.tensors[name] for s in sources), 0, 0, merged)
        if single_file is None and groups[-1] and sizes[-1] + t.nbytes > max_shard_size:
            groups.append([])
            sizes.append(0)
        groups[-1].append(t)
        sizes[-1] += t.nbytes

    n = len(groups)
    shards: list[Shard] = []
    placed: list[OutTensor] = []
    for i, group in enumerate(groups):
        name = single_file or (SINGLE_FILE if n == 1 else f"model-{i + 1:05d}-of-{n:05d}.safetensors")
        header: dict[str, object] = {"__metadata__": metadata}
        pos = 0
        for t in group:
            header[t.name] = {"dtype": t.out_dtype, "shape": list(t.shape), "data_offsets": [pos, pos + t.nbytes]}
            pos += t.nbytes
        raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
        raw += b" " * (-len(raw) % 8)  # data starts 8-byte aligned, as the safetensors library writes it
        head = len(raw).to_bytes(8, "little") + raw
        start = len(head)
        out_group = []
        pos = 0
        for t in group:
            t2 = OutTensor(t.name, t.shape, t.in_dtype, t.out_dtype, t.sources, i, start + pos, t.merged)
            out_group.append(t2)
            placed.append(t2)
            pos += t.nbytes
        shards.append(Shard(name, head, start + pos, tuple(out_group)))
    return MergePlan(tuple(s.label for s in sources), tuple(float(w) for w in weights), tuple(placed), tuple(shards), metadata)


def check_disk_space(plan: MergePlan, out: Path, extra: int = 0) -> None:
    """Refuse before writing a byte when the output filesystem cannot hold the output."""
    probe = Path(out).absolute().parent
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    need = plan.out_bytes + extra
    if need > free:
        raise MergeError(f"not enough free disk space for {out}: the merge writes {_human(need)}, {probe} has {_human(free)} free")
