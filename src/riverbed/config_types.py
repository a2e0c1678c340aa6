"""Type-checking a TOML value against a dataclass field's annotation (for config sections).

>>> from riverbed.config_types import coerce
>>> coerce(3, float | None, "optim.lr", "run.toml")
3.0
>>> coerce([0.9, 0.95], tuple[float, float], "optim.betas", "run.toml")
(0.9, 0.95)
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

from riverbed.errors import ConfigError


def coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints widen to floats, lists to tuples."""
    ok, out = _coerce(value, tp)
    if not ok:
        if typing.get_origin(tp) is Literal:
            allowed = ", ".join(repr(a) for a in typing.get_args(tp))
            raise ConfigError(f"{source}: {key}={value!r} is not allowed; allowed values: {allowed}")
        raise ConfigError(f"{source}: {key}={value!r} has the wrong type (expected {_type_name(tp)})")
    check_number(out, key, source)
    return out


INT64 = (-(2**63), 2**63 - 1)


def check_number(value: Any, key: str, source: str) -> None:
    """No config number is NaN or infinite, and every integer fits int64 (seeds, lengths and
    sizes end up in torch / numpy int64); lists, tuples and tables are checked item by item."""
    if isinstance(value, bool):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{source}: {key}={value!r} is not a finite number")
    if isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
        raise ConfigError(f"{source}: {key}={value} is out of range (integers must fit in 64 bits: "
                          f"{INT64[0]} .. {INT64[1]})")
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_number(v, f"{key}[{i}]", source)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            check_number(v, f"{key}.{k}", source)


def _coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return type(None) in args, None
        for arg in args:
            if arg is type(None):
                continue
            ok, out = _coerce(value, arg)
            if ok:
                return True, out
        return False, value
    if origin is Literal:
        return value in args and type(value) in {type(a) for a in args}, value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False, value
        return True, float(value)
    if tp is str:
        return isinstance(value, str), value
    if origin is tuple or tp is tuple:
        if not isinstance(value, (list, tuple)):
            return False, value
        if args and args[-1] is not Ellipsis and len(args) != len(value):
            return False, value
        item_types = [args[0]] * len(value) if (args and args[-1] is Ellipsis) else (args or [Any] * len(value))
        outs = []
        for v, t in zip(value, item_types):
            ok, o = _coerce(v, t)
            if not ok:
                return False, value
            outs.append(o)
        return True, tuple(outs)
    if origin is list or tp is list:
        if not isinstance(value, (list, tuple)):
            return False, value
        item = args[0] if args else Any
        outs = []
        for v in value:
            ok, o = _coerce(v, item)
            if not ok:
                return False, value
            outs.append(o)
        return True, outs
    if origin is dict or tp is dict or origin is Mapping:
        return isinstance(value, Mapping), dict(value) if isinstance(value, Mapping) else value
    if isinstance(tp, type):
        return isinstance(value, tp), value
    return True, value  # an annotation we cannot check: the dataclass validates it


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    # Literal's __name__ is just "Literal": spell out the allowed values instead.
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
