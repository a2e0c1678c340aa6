"""The streaming merge engine: ``M = sum_i w_i M_i`` over checkpoints too big for memory.

Each output tensor is cut into fixed-size chunks (``CHUNK_ELEMS`` elements, whatever the thread
count). A worker thread takes the next chunk, reads that slice of every input by file offset into
its own reused buffer, accumulates ``acc += w_i * x_i`` in float32 (or float64) in the fixed
order input 1, 2, ..., N, converts to the output dtype and writes the bytes at their final
offset. Threads overlap reading, accumulating and writing; memory is a few chunk buffers per
thread, flat in the model size and the number of inputs. Because chunk boundaries and the
summation order do not depend on the threads, and each numpy operation rounds once
(:mod:`riverbed.merging.kernels`), the output is bit-identical for any thread count.

Each merged chunk is checked for NaN / inf while it is in hand (one ``np.isfinite`` pass over the
accumulator: a non-finite input with a non-zero weight always reaches it), so a bad input is
refused, naming its file and tensor, with no extra read and nothing left at OUT.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from riverbed.checkpoints.formats import DTYPES, Source, TensorEntry, read_span
from riverbed.errors import CheckpointError, MergeError, RiverbedError
from riverbed.io.atomic import atomic_dir, atomic_path, write_json
from riverbed.io.progress import Progress
from riverbed.merging.kernels import Buffers, accumulate as kernel_accumulate, decode, encode
from riverbed.merging.merge_plan import INDEX_FILE, MergePlan, OutTensor
from riverbed.merging.writer import ShardWriter

CHUNK_ELEMS = 1 << 18  # 256K elements: 1 MB of float32 accumulator, stays in L2; fixed, never per-thread
ACCUMULATE = {"fp32": "float32", "fp64": "float64"}
NARROW = {"F16": np.float16, "F32": np.float32}  # output dtypes with less range than the accumulator


@dataclass
class MergeResult:
    """What a merge produced: the effective weights (oldest first) and the files written."""

    out: Path
    weights: tuple[float, ...]
    plan: MergePlan
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per phase: "plan" (headers), "stream" (read, merge, write), "sync" (fsync + rename)."""
    recipe: dict | None = None
    """The recipe as written to ``merge.json`` (replayable with ``riverbed merge --recipe``)."""


class _Reader:
    """Reads a chunk of one input tensor into a thread's buffer (by file offset) or slices it
    (tensors loaded in memory: a torch.load'ed .bin or ckpt.pt, a DCP tensor assembled from chunks)."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self.fds: dict[Path, int] = {}
        self.loaded: dict[tuple[Path, str], np.ndarray] = {}
        for src in sources:
            for name, entry in src.tensors.items():
                if entry.offset < 0 and src.loaded is not None:
                    self.loaded[(entry.file, name)] = _as_bytes(src.loaded[name])
            for f in src.files:
                if f not in self.fds and any(e.offset >= 0 for e in src.tensors.values()):
                    self.fds[f] = os.open(f, os.O_RDONLY)
                    if hasattr(os, "posix_fadvise"):
                        os.posix_fadvise(self.fds[f], 0, 0, os.POSIX_FADV_SEQUENTIAL)

    def read(self, entry: TensorEntry, start: int, count: int, buf: Buffers) -> np.ndarray:
        """The raw bytes of elements [start, start+count) of ``entry`` (a view into ``buf``)."""
        size = DTYPES[entry.dtype][1]
        nbytes = count * size
        if entry.offset < 0:  # a tensor in memory (flat, contiguous)
            return self.loaded[(entry.file, entry.name)][start * size : start * size + nbytes]
        try:
            read_span(entry, start, count, buf.raw_view[:nbytes], self.fds.__getitem__)
        except CheckpointError as exc:
            raise MergeError(str(exc)) from exc
        return buf.raw[:nbytes]

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


def _as_bytes(flat: object) -> np.ndarray:
    """The bytes of a flat in-memory tensor (numpy, or torch: memory-mapped, never copied)."""
    if isinstance(flat, np.ndarray):
        return flat.view(np.uint8)
    import torch  # lazy: only torch.load'ed inputs reach here, and they loaded torch already

    return flat.view(torch.uint8).numpy()  # type: ignore[attr-defined]


def _chunks(plan: MergePlan) -> Iterator[tuple[OutTensor, int, int]]:
    for t in plan.tensors:
        n = t.numel
        for start in range(0, max(n, 1), CHUNK_ELEMS):
            yield t, start, min(CHUNK_ELEMS, n - start)


def _nonfinite(t: OutTensor, plan: MergePlan, reader: _Reader, start: int, count: int, buf: Buffers) -> MergeError:
    """Name the input whose chunk holds NaN / inf (re-reading it: this runs only on failure)."""
    for w, entry in zip(plan.weights, t.sources):
        if w == 0.0:  # never read, never merged
            continue
        x = decode(entry.dtype, reader.read(entry, start, count, buf), buf)
        bad = np.flatnonzero(~np.isfinite(x))
        if bad.size:
            i = start + int(bad[0])
            return MergeError(f"{entry.file}: tensor {t.name!r} holds a non-finite value ({x[bad[0]]} at flat index {i}); "
                              "refusing to merge it (--allow-nonfinite / allow_nonfinite=True merges it anyway)")
    weights = ", ".join(f"{w:g}" for w in plan.weights)
    return MergeError(f"tensor {t.name!r}: the merge overflows to inf/NaN although every input is finite (weights {weights}); "
                      "--allow-nonfinite / allow_nonfinite=True writes it anyway")


def _stream(plan: MergePlan, sources: Sequence[Source], writers: list[ShardWriter], accumulate: str, threads: int, progress: bool,
            check_finite: bool = True) -> None:
    acc_dtype = np.float64 if accumulate == "fp64" else np.float32
    weights = plan.weights
    reader = _Reader(sources)
    tasks = _chunks(plan)
    lock = threading.Lock()
    done_bytes = [0]
    failure: list[BaseException] = []

    def work() -> None:
        # NaN/inf are found by the explicit finite check below, not by numpy's floating-point warnings
        with np.errstate(over="ignore", invalid="ignore"):
            _work()

    def _work() -> None:
        buf = Buffers(CHUNK_ELEMS, acc_dtype)
        while not failure:
            with lock:
                task = next(tasks, None)
            if task is None:
                return
            t, start, count = task
            try:
                if count <= 0:
                    continue
                nread = 0
                if not t.merged:  # non-float tensor: copy the newest input's bytes
                    data = reader.read(t.sources[-1], start, count, buf)
                    nread = len(data)
                else:
                    acc, first = buf.acc[:count], True
                    for w, entry in zip(weights, t.sources):  # fixed order: input 1, 2, ..., N
                        if w == 0.0:
                            continue
                        x = decode(entry.dtype, reader.read(entry, start, count, buf), buf)
                        kernel_accumulate(acc, buf.tmp[:count], x, w, first)
                        first = False
                        nread += count * DTYPES[entry.dtype][1]
                    # One pass over the accumulator finds NaN/inf in any input with a non-zero
                    # weight (they propagate through w*x sums): the data already in cache, no
                    # extra read. Only a failing chunk is re-read, to name the input.
                    if check_finite and not first and not np.isfinite(acc, out=buf.finite[:count]).all():
                        raise _nonfinite(t, plan, reader, start, count, buf)
                    data = encode(acc, t.out_dtype, buf)
                    # a finite accumulator can still overflow a narrower output (fp16; fp32 from fp64)
                    if check_finite and (t.out_dtype == "F16" or (t.out_dtype == "F32" and acc_dtype is np.float64)):
                        if not np.isfinite(data.view(NARROW[t.out_dtype]), out=buf.finite[:count]).all():
                            raise MergeError(f"tensor {t.name!r}: merged values exceed the range of the output dtype {t.out_dtype}; "
                                             "choose a wider --dtype (bf16 or fp32), or --allow-nonfinite to write inf")
                writers[t.shard].write(memoryview(data), t.offset + start * DTYPES[t.out_dtype][1])
                with lock:
                    done_bytes[0] += nread
            except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
                with lock:
                    failure.append(_explain(exc, t, plan, writers))
                return

    pool = [threading.Thread(target=work, name=f"riverbed-merge-{i}", daemon=True) for i in range(threads)]
    try:
        with _progress(progress, plan.in_bytes) as update:
            for th in pool:
                th.start()
            while alive := [th for th in pool if th.is_alive()]:
                alive[0].join(0.1)
                update(done_bytes[0])
            update(done_bytes[0])  # the last chunks finish between two polls
    except BaseException as exc:  # Ctrl-C: stop the workers before the temporary output goes
        failure.append(exc)
        raise
    finally:
        for th in pool:
            th.join()
        reader.close()
    if failure:
        raise failure[0]


def _explain(exc: BaseException, t: OutTensor, plan: MergePlan, writers: list[ShardWriter]) -> BaseException:
    if isinstance(exc, RiverbedError):
        return exc
    if isinstance(exc, OSError):
        files = ", ".join(str(e.file) for e in t.sources)
        what = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        msg = f"{what} while merging tensor {t.name!r} into {writers[t.shard].path.name} (inputs: {files})"
        err = MergeError(msg)
        err.__cause__ = exc
        return err
    return exc


class _progress:
    """Bytes merged so far, shown by riverbed.io.progress (a bar on a terminal, plain
    ``merging: 42% ...`` lines in a log), or nothing."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.display = Progress(enabled=enabled, bytes=True)
        self.total = total

    def __enter__(self) -> Callable[[int], None]:
        self.display.__enter__()
        task = self.display.add("merging", self.total, unit="bytes")
        return lambda n: self.display.update(task, completed=n)

    def __exit__(self, *exc: Any) -> None:
        self.display.__exit__(*exc)


def execute(plan: MergePlan, sources: Sequence[Source], out: Path, *, accumulate: str = "fp32", threads: int | None = None,
            overwrite: bool = False, progress: bool = True, recipe: dict | None = None, extra_files: dict[str, Path | bytes] | None = None,
            check_finite: bool = True, timings: dict[str, float] | None = None) -> list[Path]:
    """Write ``plan`` to ``out`` (a directory, or one ``.safetensors`` file) atomically.
    ``extra_files`` (name -> a file to copy, or bytes) go beside the shards of a directory output;
    ``check_finite`` refuses NaN / inf in the merged values, naming the input file and tensor.
    ``timings`` (if given) receives the seconds spent streaming and syncing."""
    timings = {} if timings is None else timings
    if accumulate not in ACCUMULATE:
        raise MergeError(f"accumulate must be one of fp32, fp64; got {accumulate!r}")
    threads = min(4, os.cpu_count() or 1) if threads is None else threads
    if threads < 1:
        raise MergeError(f"threads must be >= 1, got {threads}")
    if out.exists() and not overwrite:  # the caller's check (merging.overwrite) says why; this is the last line
        raise MergeError(f"output {out} already exists (pass --overwrite / overwrite=True to replace it)")
    if out.suffix == ".safetensors":
        with atomic_path(out, overwrite=overwrite) as tmp:
            writers = [ShardWriter(tmp, plan.shards[0])]
            _run(plan, sources, writers, accumulate, threads, progress, timings, check_finite)
        timings["sync"] = time.perf_counter() - timings.pop("_t")
        return [out]
    with atomic_dir(out, overwrite=overwrite) as tmp:
        writers = []
        try:
            for shard in plan.shards:
                writers.append(ShardWriter(tmp / shard.filename, shard))
        except OSError as exc:
            for w in writers:
                w.close()
            what = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
            raise MergeError(f"{what} while creating output shard {shard.filename} in {out}") from exc
        _run(plan, sources, writers, accumulate, threads, progress, timings, check_finite)
        index = plan.index()
        if index is not None:
            write_json(tmp / INDEX_FILE, index)
        for name, content in (extra_files or {}).items():
            if isinstance(content, bytes):
                (tmp / name).write_bytes(content)
            else:
                shutil.copy2(content, tmp / name)
        if recipe is not None:
            write_json(tmp / "merge.json", recipe)
        names = sorted(p.name for p in tmp.iterdir())
    timings["sync"] = time.perf_counter() - timings.pop("_t")
    return [out / n for n in names]


def _run(plan: MergePlan, sources: Sequence[Source], writers: list[ShardWriter], accumulate: str, threads: int, progress: bool,
         timings: dict[str, float], check_finite: bool = True) -> None:
    try:
        t0 = time.perf_counter()
        _stream(plan, sources, writers, accumulate, threads, progress, check_finite)
        timings["_t"] = time.perf_counter()
        timings["stream"] = timings["_t"] - t0
        for w in writers:
            w.finish()
    except OSError as exc:
        names = ", ".join(str(w.path.name) for w in writers)
        what = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise MergeError(f"{what} while writing merge output ({names})") from exc
    finally:
        for w in writers:
            w.close()
