"""Numbers as users type them: one parser for every count, size, amount and list of them.

Every count flag of the CLI (``--every``, ``--steps``, ``--warmup``, ``--budgets``,
``--flops``, ``--n``, ``--max-shard-size``, ``--length`` ...) goes through this module, so
``100K``, ``1e5`` and ``100_000`` mean the same everywhere, lists are comma-separated
everywhere, and a value that cannot be a number (``1e400`` is infinite, ``1.5`` steps is
not whole) is a :class:`~riverbed.errors.ConfigError` naming the flag.

Suffixes are decimal (SI, as in "a 7B model"): K = 10^3, M = 10^6, G and B = 10^9,
T = 10^12, case-insensitive. Byte sizes follow the Hugging Face convention
(``5GB`` = 5·10^9, ``2GiB`` = 2·2^30).

>>> parse_count("100K"), parse_count("1e5"), parse_count("100_000"), parse_count(7)
(100000, 100000, 100000, 7)
>>> parse_floats("1e21,5e23"), parse_counts("1K, 2K")
([1e+21, 5e+23], [1000, 2000])
>>> parse_bytes("5GB"), parse_bytes("2GiB")
(5000000000, 2147483648)
>>> split_quantity("2M tok", ("tok", "steps")), split_quantity("200", ("tok", "steps"))
((2000000.0, 'M', 'tok'), (200.0, '', ''))
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from riverbed.errors import ConfigError

SUFFIXES: dict[str, int] = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "B": 10**9, "T": 10**12}
BYTE_UNITS: dict[str, int] = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
                              "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
# a number, then an optional tail: an SI suffix and/or a unit word ("2M tok", "5GB", "200 steps")
_QUANTITY_RE = re.compile(r"^\s*([+-]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)\s*([a-z% ]*?)\s*$", re.IGNORECASE)
EXAMPLES = "like 100, 100K or 1e5"

T = TypeVar("T")


def _number(m: re.Match[str], text: Any, field: str) -> float:
    try:
        value = float(m.group(1).replace("_", ""))
    except ValueError:
        raise ConfigError(f"{field}={text!r}: expected a number {EXAMPLES}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{field}={text!r}: {m.group(1)} is too large to be a number")
    return value


def split_quantity(text: str, units: tuple[str, ...] = (), *, field: str = "value") -> tuple[float, str, str]:
    """``"2M tok"`` -> ``(2e6, "M", "tok")``: the value (suffix applied), the suffix as written
    (upper-cased, "" if none) and which of ``units`` follows ("" if none). An unknown tail, or a
    value that is not finite (``1e400``), is a ConfigError naming ``field``."""
    m = _QUANTITY_RE.match(str(text))
    if not m:
        raise ConfigError(f"{field}={text!r}: expected a number {EXAMPLES}")
    value = _number(m, text, field)
    tail = m.group(2).strip()
    known = {u.lower(): u for u in units}
    if not tail:
        return value, "", ""
    if tail.lower() in known:  # "200 steps", "65536tok": no suffix ("t" alone is tera, not tokens)
        return value, "", known[tail.lower()]
    suffix, rest = tail[:1].upper(), tail[1:].strip()
    if suffix in SUFFIXES and suffix and (not rest or rest.lower() in known):
        return value * SUFFIXES[suffix], suffix, known.get(rest.lower(), "")
    expected = f"a number {EXAMPLES}" + (f", then one of: {', '.join(units)}" if units else "")
    raise ConfigError(f"{field}={text!r}: unexpected {tail!r} after the number (expected {expected})")


def _plain(text: Any, field: str) -> float:
    if isinstance(text, bool):
        raise ConfigError(f"{field}={text!r}: expected a number {EXAMPLES}")
    if isinstance(text, (int, float)):
        value = float(text)
        if not math.isfinite(value):
            raise ConfigError(f"{field}={text!r}: not a finite number")
        return value
    value, _suffix, _unit = split_quantity(text, field=field)
    return value


def parse_float(text: str | float, *, field: str = "value", positive: bool = False) -> float:
    """A finite number, suffixes allowed (``"5e23"``, ``"1.5M"``)."""
    value = _plain(text, field)
    if positive and value <= 0:
        raise ConfigError(f"{field}={text!r}: must be positive")
    return value


def parse_count(text: str | int, *, field: str = "value", positive: bool = False) -> int:
    """A whole number >= 0 (> 0 with ``positive``): ``"100K"``, ``"1e5"``, ``"100_000"``."""
    if isinstance(text, int) and not isinstance(text, bool):
        value: int = text
    else:
        _plain(text, field)  # the checks and messages every number gets (finite, a known suffix)
        exact = _exact(text, field)  # never through float: 9007199254740993 stays exact
        if exact != exact.to_integral_value():
            raise ConfigError(f"{field}={text!r}: expected a whole number {EXAMPLES}")
        value = int(exact)
    if value < 0 or (positive and value == 0):
        raise ConfigError(f"{field}={text!r}: must be {'positive' if positive else '>= 0'}")
    return value


def _exact(text: str | float, field: str) -> Decimal:
    """The exact decimal value of a number as typed (its suffix applied), for whole counts."""
    if isinstance(text, float):
        return Decimal(text)
    _value, suffix, _unit = split_quantity(text, field=field)
    m = _QUANTITY_RE.match(str(text))
    assert m is not None  # split_quantity matched it
    return Decimal(m.group(1).replace("_", "")) * SUFFIXES[suffix]


def parse_list(text: str, parse: Callable[..., T], *, field: str = "value", **kw: Any) -> list[T]:
    """Comma-separated values, each parsed by ``parse`` (empty items are an error)."""
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts) or not all(parts):
        raise ConfigError(f"{field}={text!r}: expected comma-separated numbers {EXAMPLES.replace('like ', 'like 1e8,')}")
    return [parse(p, field=field, **kw) for p in parts]


def parse_counts(text: str, *, field: str = "value", positive: bool = False) -> list[int]:
    return parse_list(text, parse_count, field=field, positive=positive)


def parse_floats(text: str, *, field: str = "value", positive: bool = False) -> list[float]:
    return parse_list(text, parse_float, field=field, positive=positive)


def parse_bytes(text: str | int, *, field: str = "size") -> int:
    """A positive byte size: ``"5GB"`` (10^9), ``"2GiB"`` (2^30), ``"500MB"``, ``1024``."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = float(text)
    else:
        m = _QUANTITY_RE.match(str(text))
        unit = m.group(2).replace(" ", "").upper() if m else ""
        if not m or (unit and unit not in BYTE_UNITS):
            raise ConfigError(f"{field}={text!r}: expected a size like 5GB, 500MB or 2GiB")
        value = _number(m, text, field) * BYTE_UNITS.get(unit or "B", 1)
    if value <= 0 or value != int(value):
        raise ConfigError(f"{field}={text!r}: must be a positive whole number of bytes")
    return int(value)


def arg(parse: Callable[..., T], **kw: Any) -> Callable[[str], T]:
    """An argparse ``type=`` for ``parse``: its ConfigError becomes argparse's usage error
    (exit 2, ``argument --every: ...``) with our message rather than "invalid value"."""

    def convert(text: str) -> T:
        try:
            return parse(text, field="value", **kw)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc).replace("value=", "", 1)) from None

    convert.__name__ = parse.__name__.removeprefix("parse_")
    return convert


class JoinWords(argparse.Action):
    """``nargs="+"`` words joined by one space: ``--length 2M tok`` reads as ``--length "2M tok"``
    (a length and its unit are one value; unquoted, the shell hands them over as two words)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, " ".join(values) if isinstance(values, list) else values)
