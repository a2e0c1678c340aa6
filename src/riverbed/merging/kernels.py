"""Chunk kernels of the streaming engine, in numpy: decode a dtype, multiply-add, encode.

numpy rather than torch: importing torch costs seconds of CPU before a byte is read, numpy
ufuncs release the GIL (the engine's threads run them in parallel), and each elementwise
operation rounds exactly once in IEEE arithmetic whatever the SIMD width or the thread, so
the output does not depend on the machine's threading. bfloat16 is the top half of a float32:
decoding is a shift, encoding rounds to nearest-even exactly as torch does.
"""

from __future__ import annotations

import numpy as np

from riverbed.checkpoints.formats import DTYPES

NUMPY = {"F64": np.float64, "F32": np.float32, "F16": np.float16}
BF16_NAN = np.uint16(0x7FC0)


class Buffers:
    """Per-thread scratch space: a few chunk-sized arrays, reused for every chunk."""

    def __init__(self, chunk: int, acc_dtype: type) -> None:
        self.raw = np.empty(chunk * 8, dtype=np.uint8)
        self.raw_view = memoryview(self.raw)
        self.u32 = np.empty(chunk, dtype=np.uint32)
        self.acc = np.empty(chunk, dtype=acc_dtype)
        self.tmp = np.empty(chunk, dtype=acc_dtype)
        self.out8 = np.empty(chunk * 8, dtype=np.uint8)
        self.finite = np.empty(chunk, dtype=bool)  # the non-finite check of each merged chunk


def decode(dtype: str, data: np.ndarray, buf: Buffers) -> np.ndarray:
    """The float values of ``data`` (raw little-endian bytes of ``dtype``), without copying
    where the dtype is native to numpy; bfloat16 is widened to float32 in ``buf.u32``."""
    if dtype == "BF16":
        u16 = data.view(np.uint16)
        u = buf.u32[: len(u16)]
        np.left_shift(u16, 16, out=u, dtype=np.uint32)
        return u.view(np.float32)
    if dtype in NUMPY:
        return data.view(NUMPY[dtype])
    # float8: numpy has no such dtype; torch decodes it (imported only for these inputs)
    import torch  # lazy: loads torch, which importing this module must not

    t = torch.frombuffer(bytearray(data.tobytes()), dtype=getattr(torch, DTYPES[dtype][0]))
    return t.float().numpy()


def accumulate(acc: np.ndarray, tmp: np.ndarray, x: np.ndarray, w: float, first: bool) -> None:
    """``acc = w*x`` (first input) or ``acc += w*x``: each product and sum rounded once in acc's dtype."""
    weight = acc.dtype.type(w)
    if first:
        np.multiply(x, weight, out=acc)
    else:
        np.multiply(x, weight, out=tmp)
        np.add(acc, tmp, out=acc)


def encode(acc: np.ndarray, dtype: str, buf: Buffers) -> np.ndarray:
    """``acc`` rounded to ``dtype`` (nearest-even), as raw bytes (a view into ``buf``)."""
    n = len(acc)
    if dtype == "BF16":
        f32 = acc if acc.dtype == np.float32 else acc.astype(np.float32)
        u = f32.view(np.uint32)
        r = buf.u32[:n]
        # round to nearest even: add 0x7FFF plus the lowest kept bit, then drop the low half
        np.right_shift(u, 16, out=r)
        np.bitwise_and(r, 1, out=r)
        r += 0x7FFF
        r += u
        r >>= 16
        out = buf.out8[: 2 * n].view(np.uint16)
        np.copyto(out, r, casting="unsafe")
        nan = np.isnan(f32)
        if nan.any():
            out[nan] = BF16_NAN
        return out.view(np.uint8)
    if dtype in NUMPY:
        target = NUMPY[dtype]
        if acc.dtype == target:
            return acc.view(np.uint8)
        size = np.dtype(target).itemsize
        out = buf.out8[: size * n].view(target)
        np.copyto(out, acc, casting="unsafe")
        return out.view(np.uint8)
    raise ValueError(f"cannot write dtype {dtype}")  # plan only asks for bf16/fp16/fp32 outputs
