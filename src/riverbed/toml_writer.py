"""TOML text for what configs hold, written by tomli-w (the well-kept writer; strings, control
characters and floats escaped and round-tripped as the TOML spec says).

``tomllib.loads(dumps_toml(d)) == d`` for such dicts, with None values omitted (TOML has no null),
paths written as strings and tuples as arrays.

>>> print(dumps_toml({"train": {"batch_size": 8, "lr": 1e-3, "note": None}}), end="")
[train]
batch_size = 8
lr = 0.001
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import tomli_w

from riverbed.errors import ConfigError


def _plain(v: Any) -> Any:
    """``v`` with None dropped from tables, paths as strings and tuples as lists (what TOML holds)."""
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items() if x is not None}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, PurePath):
        return str(v)
    return v


def dumps_toml(d: Mapping[str, Any]) -> str:
    """TOML text for a dict of tables; ``tomllib.loads(dumps_toml(d)) == d`` (None omitted)."""
    try:
        return tomli_w.dumps(_plain(d))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot write this config to TOML: {exc}") from None
