"""Output shards written in place: the header first, then every chunk at its final offset.

Files are created at their final size (sparse) so that worker threads can ``pwrite`` chunks in
any order. Each written range is handed to the kernel for write-back right away
(``POSIX_FADV_DONTNEED``), so the final fsync of the temporary directory has little left to do
and the output does not crowd the page cache.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from riverbed.merging.merge_plan import Shard

_FADVISE = getattr(os, "posix_fadvise", None)
_WRITEBACK_EVERY = 32 * 1024 * 1024  # start write-back in 32 MB steps, not per chunk


def _pwrite(fd: int, data: memoryview, offset: int) -> int:
    # The one place bytes hit the output; tests monkeypatch it to simulate a full disk.
    return os.pwrite(fd, data, offset)


class ShardWriter:
    """One output shard file, open for positional writes from several threads."""

    def __init__(self, path: Path, shard: Shard) -> None:
        self.path = path
        self.shard = shard
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self._pending = 0
        try:
            self.write(memoryview(shard.header), 0)
            os.ftruncate(self.fd, shard.size)
        except BaseException:
            self.close()
            raise

    def write(self, data: memoryview, offset: int) -> None:
        data = data.cast("B") if data.format != "B" or data.ndim != 1 else data
        done = 0
        while done < len(data):
            n = _pwrite(self.fd, data[done:], offset + done)
            if n <= 0:  # pragma: no cover - pwrite never returns 0 for a regular file
                raise OSError(errno.EIO, f"short write to {self.path}")
            done += n
        self._pending += len(data)
        if _FADVISE is not None and self._pending >= _WRITEBACK_EVERY:
            self._pending = 0
            # Starts asynchronous write-back of this file's dirty pages (Linux); harmless elsewhere.
            try:
                _FADVISE(self.fd, 0, 0, os.POSIX_FADV_DONTNEED)
            except OSError:  # pragma: no cover
                pass

    def finish(self) -> None:
        os.fsync(self.fd)
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
