"""One writer per branch: an exclusive lock file in the branch directory (``lock_file``;
a branch's lock is :func:`riverbed.checkpoints.layout.writer_lock`).

Two processes training the same branch (two ``riverbed train`` on one run, the same
``riverbed branch`` twice) would interleave checkpoints and metrics. Every writer of a branch
holds ``branches/<branch>/.writer.lock``: ``fcntl.flock`` on an open descriptor, so the kernel
releases it when the holder dies however it dies (kill -9 included) -- a lock can never be
stale while the file says who holds it (pid, host, start time, command) for the message the
second writer gets (:class:`~riverbed.errors.LockedError`, exit code 2).

Where ``fcntl`` does not exist the JSON content is the lock: it is taken over when the pid it
names is gone on this host.

The lock is re-entrant within a process (the CLI takes it, then ``train_branch`` takes it
again), and the file is never deleted: deleting it would let a process that opened the old
file and one that creates a new one both hold "the" lock.

>>> from riverbed.checkpoints.layout import writer_lock     # doctest: +SKIP
>>> with writer_lock("runs/x", "main"):                          # doctest: +SKIP
...     train_branch(cfg, "runs/x", "main", until_step=100)
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from riverbed.errors import LockedError, RunError

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX
    fcntl = None  # type: ignore[assignment]

# realpath of a lock file -> [fd, depth] for the locks this process holds.
_HELD: dict[str, list[int]] = {}


def read_holder(lock: Path) -> dict[str, Any]:
    """The holder a lock file names ({} when empty or unreadable)."""
    try:
        data = json.loads(lock.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _describe(lock: Path, what: str) -> str:
    h = read_holder(lock)
    who = (f"pid {h.get('pid')} on {h.get('host')}, since {h.get('started')}"
           + (f": {h['command']}" if h.get("command") else "")) if h else "a process that is just starting"
    return (f"{what} is being written by another process ({who}; lock {lock}); wait for it to finish or stop it, "
            "then run this again")


def _alive_here(holder: dict[str, Any]) -> bool:
    if holder.get("host") != socket.gethostname():
        return bool(holder)  # another machine: cannot tell, assume it is alive
    try:
        os.kill(int(holder.get("pid", -1)), 0)
    except (ProcessLookupError, ValueError, TypeError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def lock_file(lock: str | os.PathLike[str], *, what: str) -> Iterator[None]:
    """Hold ``lock`` exclusively for the body; LockedError naming the holder if another has it."""
    lock = Path(lock)
    key = os.path.realpath(lock)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        dangling = next((p for p in lock.parents if p.is_symlink() and not p.exists()), None)
        if dangling is not None:
            raise RunError(f"{what} cannot be written: {dangling} is a dangling symbolic link (-> {os.readlink(dangling)}); "
                           "restore what it points to, or remove the link") from None
        raise RunError(f"{what} cannot be written: {exc.strerror or exc} ({exc.filename or lock})") from None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                time.sleep(0.05)  # the holder may be writing its name right now
                raise LockedError(_describe(lock, what)) from None
        elif _alive_here(read_holder(lock)):  # pragma: no cover - non-POSIX
            raise LockedError(_describe(lock, what))
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "command": " ".join(sys.argv[:6])}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        _HELD[key] = [fd, 1]
        try:
            yield
        finally:
            del _HELD[key]
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # free: nobody to name
    finally:
        os.close(fd)  # closing the descriptor releases the flock

