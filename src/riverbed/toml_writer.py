"""A minimal TOML writer for what configs hold: scalars, arrays, inline and nested tables.

``tomllib.loads(dumps_toml(d)) == d`` for such dicts (None values are omitted: TOML has no
null). Floats are written with ``repr``, which round-trips exactly.

>>> print(dumps_toml({"train": {"batch_size": 8, "lr": 1e-3}}), end="")
[train]
batch_size = 8
lr = 0.001
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from riverbed.errors import ConfigError


def dumps_toml(d: Mapping[str, Any]) -> str:
    """TOML text for a dict of tables; ``tomllib.loads(dumps_toml(d)) == d`` (None omitted)."""
    lines: list[str] = []
    _emit_table(lines, [], d)
    return "\n".join(lines).strip() + "\n"


def _emit_table(lines: list[str], prefix: list[str], d: Mapping[str, Any]) -> None:
    scalars = {k: v for k, v in d.items() if not isinstance(v, Mapping) and v is not None}
    tables = {k: v for k, v in d.items() if isinstance(v, Mapping)}
    if prefix and (scalars or not tables):
        lines.append(f"\n[{'.'.join(_key(p) for p in prefix)}]")
    for k, v in scalars.items():
        lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in tables.items():
        _emit_table(lines, [*prefix, k], v)


def _key(k: str) -> str:
    return k if k and all(c.isalnum() or c in "_-" for c in k) else _string(k)


def _string(s: str) -> str:
    out = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{out}"'


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)  # shortest round-tripping form; always has '.', 'e', or is an int-like repr
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, Path):
        return _string(str(v))
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items() if x is not None) + "}"
    raise ConfigError(f"cannot write {v!r} ({type(v).__name__}) to TOML")
