"""Atomic writes: every output goes to a sibling temporary path and is renamed into place.

A crash at any moment leaves either the old file/directory or the new one, never a half
written one, and never nothing where something was:

* Without ``overwrite`` the final rename refuses to replace anything: Linux
  ``renameat2(RENAME_NOREPLACE)``, so an OUT that appeared while the output was being written
  (another merge to the same OUT, a user's folder) is left untouched; the finished output is
  kept beside it under a visible name and :class:`~riverbed.errors.OutputExistsError` names
  both paths.
* With ``overwrite`` the new content and the old are swapped in one step
  (``renameat2(RENAME_EXCHANGE)``), then the old copy (now at the temporary name) is removed.

Fallback where ``renameat2`` is missing or the filesystem refuses it (non-Linux, some network
filesystems): no-replace uses ``os.link`` for files (atomic, fails if the name exists; a
check-then-rename where hard links are not supported) and a check-then-rename for directories
(``rename`` onto a non-empty directory fails anyway; only an *empty* directory appearing in
between could be replaced); overwrite renames the old copy
aside to ``.<name>.old-<pid>-<tag>`` first, and :func:`cleanup_stale_tmp` -- run before every
write into that directory -- puts it back if its process died before the new one was in place.

Temporary siblings are named ``.<name>.tmp-<pid>-<tag>`` (``<tag>`` = 4 hex digits of the host
name, then 6 random ones) so a later run recognises leftovers of a killed process on this host
and removes them; a live process's temporaries and anything else are never touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from riverbed.errors import DiskFullError, OutputExistsError
from riverbed.io.strict_json import dumps as strict_dumps

TMP_MARK = ".tmp-"
OLD_MARK = ".old-"
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_AT_FDCWD = -100
# .<name>.tmp-<pid>-<tag>: a new output being written; .<name>.old-<pid>-<tag>: an old output set
# aside by the overwrite fallback. <tag> = host tag (4 hex) + random (6 hex); 8 hex = older form.
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-(?P<tag>[0-9a-f]{8}|[0-9a-f]{10})$")
# Clock slack when comparing a temporary's ctime with its process's start (btime has 1 s resolution).
_START_SLACK_S = 2.0


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:4]


def _sibling(path: Path, mark: str) -> Path:
    return path.with_name(f".{path.name}{mark}{os.getpid()}-{_host_tag()}{secrets.token_hex(3)}")


def tmp_sibling(path: str | os.PathLike[str]) -> Path:
    return _sibling(Path(path), TMP_MARK)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    # Makes the rename itself durable; not supported on every platform/filesystem.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(dirpath)


# ---- renameat2 ------------------------------------------------------------------------------


def _load_renameat2() -> Any:
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # not glibc >= 2.28 / not Linux
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_renameat2 = _load_renameat2()
# errnos meaning "this kernel / filesystem cannot do it": use the fallback.
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}


def _rename2(src: Path, dst: Path, flags: int) -> bool:
    """renameat2; True when done, False when unsupported here; other failures raise OSError."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(dst))


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; FileExistsError if ``dst`` exists (nothing is replaced)."""
    if _rename2(src, dst, _RENAME_NOREPLACE):
        return
    if src.is_dir() and not src.is_symlink():
        # Fallback: a rename onto a non-empty directory fails by itself; check for the rest.
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "exists", str(dst))
        try:
            os.rename(src, dst)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise FileExistsError(errno.EEXIST, "exists", str(dst)) from None
            raise
        return
    try:
        os.link(src, dst)  # atomic: EEXIST if dst exists
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if os.path.lexists(dst):  # no hard links on this filesystem: check, then rename
            raise FileExistsError(errno.EEXIST, "exists", str(dst)) from None
        os.rename(src, dst)
        return
    os.unlink(src)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _replace(tmp: Path, path: Path) -> None:
    """Put ``tmp`` at ``path``, replacing what is there, with ``path`` never missing."""
    if os.path.lexists(path):
        try:
            if _rename2(tmp, path, _RENAME_EXCHANGE):
                _remove(tmp)  # now holds the old content
                return
        except FileNotFoundError:
            pass  # path vanished meanwhile: a plain no-replace rename below
        else:
            # Fallback: old copy aside under a name cleanup_stale_tmp restores after a crash.
            old = _sibling(path, OLD_MARK)
            os.rename(path, old)
            os.rename(tmp, path)
            _remove(old)
            return
    try:
        rename_noreplace(tmp, path)
    except FileExistsError:  # appeared after the check: replace it after all (overwrite asked)
        _replace(tmp, path)


def _finish(tmp: Path, path: Path, overwrite: bool) -> None:
    if overwrite:
        _replace(tmp, path)
        return
    try:
        rename_noreplace(tmp, path)
    except FileExistsError:
        kept = _keep_beside(tmp, path)
        raise OutputExistsError(f"{path} appeared while the output was being written (another process?) and was "
                                f"left untouched; the finished output is kept at {kept}") from None


def _keep_beside(tmp: Path, path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    for i in range(100):
        kept = path.with_name(f"{path.name}.new-{stamp}-{os.getpid()}" + (f"-{i}" if i else ""))
        with contextlib.suppress(FileExistsError):
            rename_noreplace(tmp, kept)
            return kept
    raise OutputExistsError(f"{path} appeared while the output was being written; could not keep the output beside it")


# ---- the context managers ---------------------------------------------------------------------


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((a for a in path.parents if os.path.lexists(a) and not a.is_dir()), path.parent)
        raise OutputExistsError(f"cannot create {path}: {blocker} is a file, not a directory") from None


_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_DISK_FULL_WORDS = ("No space left", "StorageFull", "Disk quota", "FilesystemQuotaExceeded", "FileTooLarge", "File too large")


def is_disk_full(exc: BaseException) -> bool:
    """An OSError for a full device, quota or file-size limit, or a writer library's (safetensors')
    error wrapping one."""
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
        return True
    return not isinstance(exc, OSError) and type(exc).__name__ == "SafetensorError" and any(w in str(exc) for w in _DISK_FULL_WORDS)


def disk_full_error(path: str | os.PathLike[str], exc: BaseException) -> DiskFullError:
    """The one message for a full disk, naming what was being written."""
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "no space left on the device"
    return DiskFullError(f"{path}: {why} while writing it; nothing half-written was left in its place: "
                         "free some space and run the same command again (it resumes)")


@contextlib.contextmanager
def _disk_full_is_an_error(path: Path) -> Iterator[None]:
    try:
        yield
    except DiskFullError:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise disk_full_error(path, exc) from None
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling file path; on success fsync it and rename it onto ``path``.

    Without ``overwrite``, an existing ``path`` (at the start or at the final rename) raises
    OutputExistsError and is never replaced.
    """
    path = Path(path)
    cleanup_stale_tmp(path.parent)  # first: it may put back an old copy an interrupted overwrite set aside
    if not overwrite and os.path.lexists(path):
        raise OutputExistsError(f"{path} already exists")
    _make_parent(path)  # -o new/dir/out.json: the folders are made, a file in the way is named
    tmp = tmp_sibling(path)
    try:
        with _disk_full_is_an_error(path):
            yield tmp
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            _finish(tmp, path, overwrite)
            fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary sibling directory; on success rename it to ``path``.

    With ``overwrite=True`` an existing ``path`` is swapped with the new content atomically
    (old or new is at ``path`` at every instant). Without it, ``path`` existing at the start
    or by the final rename raises OutputExistsError; in the latter case the finished output is
    kept beside ``path`` under the name the message gives.
    """
    path = Path(path)
    cleanup_stale_tmp(path.parent)  # first: it may put back an old copy an interrupted overwrite set aside
    if not overwrite and os.path.lexists(path):
        raise OutputExistsError(f"{path} already exists")
    _make_parent(path)
    tmp = tmp_sibling(path)
    try:
        with _disk_full_is_an_error(path):
            tmp.mkdir()
            yield tmp
            _fsync_tree(tmp)
            _finish(tmp, path, overwrite)
            fsync_dir(path.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Strict JSON (no NaN/Infinity): a non-finite number becomes null plus ``<key>_nonfinite``."""
    write_text(path, strict_dumps(obj, indent=2) + "\n")


# ---- stale temporaries --------------------------------------------------------------------------


def _process_start(pid: int) -> float | None:
    """Wall-clock start time of ``pid`` (Linux /proc), None where it cannot be told."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        lines = Path("/proc/stat").read_text().splitlines()
        btime = next(int(line.split()[1]) for line in lines if line.startswith("btime"))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _owner_gone(pid: int, made: float) -> bool:
    """Has the process that made a temporary (status-changed at ``made``) ended?

    Dead pid: gone. Live pid that started after the temporary was last written: the pid was
    reused (containers restart at low pids), so the maker is gone too.
    """
    if pid != os.getpid():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
    start = _process_start(pid)
    return start is not None and made < start - _START_SLACK_S


def stale_tmp(child: Path) -> bool:
    """Is ``child`` a riverbed temporary of this host whose process has ended?"""
    m = _TMP_RE.match(child.name)
    if m is None:
        return False
    tag = m.group("tag")
    if len(tag) == 10 and tag[:4] != _host_tag():
        return False  # another machine's (shared filesystem): its process cannot be checked here
    try:
        # ctime, not mtime: it cannot be set back (copy2 / utime set mtime), so a temporary's ctime is
        # never older than the process that made it.
        made = child.lstat().st_ctime
    except FileNotFoundError:
        return False
    return _owner_gone(int(m.group("pid")), made)


def cleanup_stale_tmp(directory: str | os.PathLike[str]) -> list[Path]:
    """Remove riverbed temporaries left by ended processes in ``directory`` (one level).

    An old copy set aside by an interrupted overwrite (``.<name>.old-*``) is put back when
    ``<name>`` is missing, so the interrupted overwrite leaves the old content. Returns the
    paths removed or restored.
    """
    directory = Path(directory)
    done: list[Path] = []
    try:
        children = [directory / e.name for e in os.scandir(directory) if e.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return done
    for child in children:
        if not stale_tmp(child):
            continue
        m = _TMP_RE.match(child.name)
        assert m is not None
        if m.group("kind") == "old" and not os.path.lexists(directory / m.group("name")):
            with contextlib.suppress(FileExistsError, FileNotFoundError):
                rename_noreplace(child, directory / m.group("name"))
                done.append(child)
                continue
        _remove(child)
        done.append(child)
    return done
