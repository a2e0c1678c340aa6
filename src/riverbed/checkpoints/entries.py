"""What a merge input is made of, whatever its format: its tensors (dtype, shape, where their
bytes are) and where its other files come from. The readers of each format
(:mod:`riverbed.checkpoints.formats`, :mod:`riverbed.checkpoints.dcp`) build these."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# safetensors dtype name -> (torch dtype attribute name, bytes per element)
DTYPES: dict[str, tuple[str, int]] = {
    "F64": ("float64", 8),
    "F32": ("float32", 4),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "F8_E4M3": ("float8_e4m3fn", 1),
    "F8_E5M2": ("float8_e5m2", 1),
    "I64": ("int64", 8),
    "I32": ("int32", 4),
    "I16": ("int16", 2),
    "I8": ("int8", 1),
    "U8": ("uint8", 1),
    "BOOL": ("bool", 1),
}
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"})


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of one input: where its bytes live (``offset`` is absolute in ``file``)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    file: Path
    offset: int
    nbytes: int
    pieces: tuple[tuple[int, Path, int, int], ...] = ()
    """A tensor stored in several flat ranges (DCP row shards): ``(first element, file, offset,
    elements)`` each, in element order; empty when it is the one range at ``file``/``offset``."""

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass
class Source:
    """One merge input: its tensors (in file order) and the directory its extra files come from."""

    label: str
    kind: str  # "riverbed" | "hf" | "safetensors" | "bin" | "nanogpt" | "dcp"
    tensors: dict[str, TensorEntry]
    files: list[Path]
    directory: Path | None = None
    # The tensors not read by offset (entry.offset == -1), flattened: torch tensors memory-mapped
    # by torch.load (pytorch_model.bin, ckpt.pt) or numpy arrays assembled from DCP chunks.
    loaded: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())
