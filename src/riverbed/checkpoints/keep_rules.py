"""The syntax of keep rules (``[train] keep``, ``riverbed plan --keep-for``): "merge=N,V",
"guard=N", "emulate", "steps=A,B,...", "plan=FILE". Pure and dependency-free, so the config can
validate a rule when it is loaded; what the rules keep is riverbed.runs.retention's.

>>> parse_keep(["merge=4,100", "guard=2"]).merge
(4, 100)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from riverbed.errors import ConfigError

RULES = ("merge", "guard", "emulate", "steps", "plan")


@dataclass(frozen=True)
class KeepRules:
    """Parsed keep rules (see the module docstring)."""

    merge: tuple[int, int] | None = None
    guard: int | None = None
    emulate: bool = False
    steps: tuple[int, ...] = ()
    plan: str | None = None
    source: tuple[str, ...] = field(default=(), compare=False)
    """The rules as written."""


def _int(text: str, key: str, rule: str, minimum: int) -> int:
    try:
        v = int(text.strip())
    except ValueError:
        raise ConfigError(f"{key}: {rule!r}: {text.strip()!r} is not a whole number") from None
    if v < minimum:
        raise ConfigError(f"{key}: {rule!r}: {v} must be >= {minimum}")
    return v


def parse_keep(items: Sequence[str], key: str = "train.keep") -> KeepRules:
    """Keep rules from strings like ``"merge=4,100"``; ConfigError names ``key`` and the rule."""
    if isinstance(items, str):
        items = [items]
    kw: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{key}: {item!r} is not a rule string (e.g. \"merge=4,100\", \"guard=2\", \"emulate\")")
        name, _, arg = item.partition("=")
        name = name.strip()
        if name not in RULES:
            raise ConfigError(f"{key}: unknown rule {item!r}; rules: merge=N,V  guard=N  emulate  steps=A,B,...  plan=FILE")
        if name in kw:
            raise ConfigError(f"{key}: rule {name!r} given twice")
        if name == "merge":
            parts = arg.split(",")
            if len(parts) != 2:
                raise ConfigError(f"{key}: {item!r}: expected merge=N,V (N checkpoints spaced V steps apart)")
            kw["merge"] = (_int(parts[0], key, item, 1), _int(parts[1], key, item, 1))
        elif name == "guard":
            kw["guard"] = _int(arg, key, item, 1)
        elif name == "emulate":
            if arg:
                raise ConfigError(f"{key}: {item!r}: emulate takes no value")
            kw["emulate"] = True
        elif name == "steps":
            kw["steps"] = tuple(sorted({_int(p, key, item, 0) for p in arg.split(",") if p.strip()}))
            if not kw["steps"]:
                raise ConfigError(f"{key}: {item!r}: give at least one step")
        else:
            if not arg.strip():
                raise ConfigError(f"{key}: {item!r}: give the plan.json path (plan=FILE)")
            kw["plan"] = arg.strip()
    return KeepRules(**kw, source=tuple(items))
