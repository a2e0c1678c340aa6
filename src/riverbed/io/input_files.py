"""Reading a user's input file: only a regular file, never without bound, and the true reason when refused.

``/dev/zero``, a FIFO or a socket given as a plan, a recipe, a config or a CSV would hang a reader or
fill memory, and "does not exist" would be the wrong message for them. :func:`regular_file` names what
the path really is; :func:`read_text` reads at most :data:`MAX_TEXT_BYTES` (a JSON/TOML/CSV input larger
than that is not one riverbed wrote or could use) and refuses bytes that are not UTF-8.

>>> read_text("/dev/zero", "--plan")  # doctest: +SKIP
Traceback (most recent call last):
riverbed.errors.ConfigError: --plan /dev/zero: is a character device, not a regular file
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from riverbed.errors import ConfigError, RiverbedError

MAX_TEXT_BYTES = 256 * 2**20  # 256 MiB: far above any plan, recipe, config, law or loss log

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str | None:
    return next((name for test, name in _KINDS if test(mode)), None if stat.S_ISREG(mode) else "not a regular file")


def regular_file(path: str | os.PathLike[str], what: str, error: type[RiverbedError] = ConfigError) -> Path:
    """``path`` if it is a regular file (after symlinks); else ``error`` naming ``what`` and what it is."""
    p = Path(path)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        raise error(f"{what} {p} not found (no such file)") from None
    except OSError as exc:
        raise error(f"{what} {p}: cannot read it ({exc.strerror or exc})") from None
    kind = _kind(mode)
    if kind is not None:
        raise error(f"{what} {p}: is {kind}, not a regular file")
    return p


def read_bytes(path: str | os.PathLike[str], what: str, error: type[RiverbedError] = ConfigError, *,
               limit: int | None = MAX_TEXT_BYTES) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` (None: no bound, for data files)."""
    p = regular_file(path, what, error)
    try:
        # O_NONBLOCK: a path swapped for a FIFO after the check cannot block the open; fstat re-checks it.
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise error(f"{what} {p}: cannot read it ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as fh:
        kind = _kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise error(f"{what} {p}: is {kind}, not a regular file")
        try:
            data = fh.read() if limit is None else fh.read(limit + 1)
        except OSError as exc:
            raise error(f"{what} {p}: cannot read it ({exc.strerror or exc})") from None
    if limit is not None and len(data) > limit:
        raise error(f"{what} {p}: larger than {limit // 2**20} MiB, too large to be a {what.lstrip('-')} file")
    return data


def read_text(path: str | os.PathLike[str], what: str, error: type[RiverbedError] = ConfigError, *,
              limit: int | None = MAX_TEXT_BYTES, encoding: str = "utf-8") -> str:
    """:func:`read_bytes` decoded (``utf-8-sig`` drops a byte-order mark); not UTF-8 is ``error``."""
    data = read_bytes(path, what, error, limit=limit)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise error(f"{what}: {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
