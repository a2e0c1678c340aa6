"""Schedules <-> plain dicts (JSON/TOML), as stored in configs, manifests and state.json.

A spec is a dict with a ``"type"`` key and the schedule's fields, every field written out
(so a manifest reads without the defaults at hand) except ``None`` values (TOML has no null)
and ``stages`` unless the shape is "step"; nested schedules are nested specs.
``schedule_from_spec(schedule_to_spec(s)) == s`` exactly. A dict with a ``"preset"``
key instead of ``"type"`` builds a framework preset from that framework's own argument names
(its spec is then the riverbed schedule it maps to).

A ``wsd`` spec takes its length either as ``stable`` or, as the CLI's ``--steps`` does, as the
total ``steps`` (stable = steps - warmup - decay); both may be given if they agree. The written
spec always carries ``stable`` (one canonical form, so fingerprints do not depend on the spelling).

>>> s = schedule_from_spec({"type": "wsd", "warmup": 10, "stable": 70, "decay": 20, "min_ratio": 0.1})
>>> schedule_to_spec(s)  # doctest: +NORMALIZE_WHITESPACE
{'type': 'wsd', 'warmup': 10, 'stable': 70, 'decay': 20, 'shape': '1-sqrt', 'min_ratio': 0.1,
 'warmup_start': 0.0, 'warmup_shape': 'linear'}
>>> schedule_from_spec(schedule_to_spec(s)) == s
True
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from riverbed.errors import ConfigError
from riverbed.schedules.core import Constant, Piecewise, Schedule, Segment, Tabulated, Warmup, WarmupStable
from riverbed.schedules.presets import preset
from riverbed.schedules.wsd import WSD, WSDS, Cosine, CyclicCosine, DecayBranch

# Literal registry: spec "type" -> class.
TYPES: dict[str, type[Schedule]] = {
    "constant": Constant,
    "warmup": Warmup,
    "warmup-stable": WarmupStable,
    "wsd": WSD,
    "cosine": Cosine,
    "decay-branch": DecayBranch,
    "wsds": WSDS,
    "cyclic-cosine": CyclicCosine,
    "piecewise": Piecewise,
    "tabulated": Tabulated,
}
_NAMES = {cls: name for name, cls in TYPES.items()}


def _kind(annotation: str) -> str:
    # Field annotations are strings (from __future__ import annotations); few kinds exist.
    a = annotation.replace(" | None", "")
    return {"int": "int", "float": "float", "str": "str", "Schedule": "schedule", "tuple[int, ...]": "ints", "tuple[float, ...]": "floats",
            "tuple[Segment, ...]": "segments"}[a]


def schedule_to_spec(schedule: Schedule) -> dict[str, Any]:
    """A JSON/TOML-serialisable dict describing ``schedule``.

    >>> schedule_to_spec(WarmupStable(warmup=100))
    {'type': 'warmup-stable', 'warmup': 100, 'warmup_start': 0.0, 'warmup_shape': 'linear'}
    """
    cls = type(schedule)
    if cls not in _NAMES:
        raise ConfigError(f"schedule: {cls.__name__} is not a riverbed schedule type")
    out: dict[str, Any] = {"type": _NAMES[cls]}
    for f in fields(cls):  # type: ignore[arg-type]
        value = getattr(schedule, f.name)
        if value is None or (f.name == "stages" and getattr(schedule, "shape", None) != "step"):
            continue
        kind = _kind(str(f.type))
        if kind == "schedule":
            value = schedule_to_spec(value)
        elif kind in ("ints", "floats"):
            value = list(value)
        elif kind == "segments":
            value = [
                {"schedule": schedule_to_spec(seg.schedule), **({} if seg.steps is None else {"steps": seg.steps})}
                for seg in value
            ]
        out[f.name] = value
    return out


def _as_int(where: str, value: Any) -> int:
    # TOML/JSON may give 1e8 as a float; accept integral floats, nothing else.
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: must be an integer, got {value!r}")
    return value


def _convert(where: str, kind: str, value: Any) -> Any:
    if kind == "int":
        return _as_int(where, value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: must be a number, got {value!r}")
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a string, got {value!r}")
        return value
    if kind == "schedule":
        return schedule_from_spec(value, where=where)
    if kind == "ints":
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: must be a list of integers, got {value!r}")
        return tuple(_as_int(f"{where}[{i}]", v) for i, v in enumerate(value))
    if kind == "floats":
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: must be a list of numbers, got {value!r}")
        return tuple(_convert(f"{where}[{i}]", "float", v) for i, v in enumerate(value))
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: must be a list of {{schedule, steps}} tables, got {value!r}")
    segs = []
    for i, item in enumerate(value):
        w = f"{where}[{i}]"
        if not isinstance(item, dict) or "schedule" not in item:
            raise ConfigError(f"{w}: must be a table with 'schedule' (and optional 'steps'), got {item!r}")
        for key in item:
            if key not in ("schedule", "steps"):
                raise ConfigError(f"{w}: unknown key {key!r} (allowed: schedule, steps)")
        steps = item.get("steps")
        sched = schedule_from_spec(item["schedule"], where=f"{w}.schedule")
        segs.append(Segment(sched, None if steps is None else _as_int(f"{w}.steps", steps)))
    return tuple(segs)


def spec_from_text(text: str, *, where: str = "--schedule") -> dict[str, Any]:
    """A schedule spec given on a command line: inline JSON (``'{"type": "cosine", ...}'``) or a
    TOML/JSON file holding it at top level or under ``schedule`` (a ``[schedule]`` table, the
    ``--json`` document of ``riverbed predict optimize``, a ``-o sched.toml`` it wrote).
    Not a dict with a ``type`` (or ``preset``) key: ConfigError naming ``where``.

    >>> spec_from_text('{"type": "constant"}')
    {'type': 'constant'}
    """
    from riverbed.io.input_files import read_text

    s = text.strip()
    if s.startswith("{"):
        try:
            spec: Any = json.loads(s)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: invalid JSON ({exc})") from None
    else:
        raw = read_text(text, where)
        try:
            spec = json.loads(raw) if Path(text).suffix == ".json" else tomllib.loads(raw)
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{where} {text}: cannot parse ({exc})") from None
        spec = spec.get("schedule", spec) if isinstance(spec, dict) else spec
    if not isinstance(spec, dict) or not ("type" in spec or "preset" in spec):
        raise ConfigError(f"{where}: must be a table/object with a 'type' key, got {str(spec)[:200]!r}")
    return spec


def schedule_from_spec(spec: dict[str, Any], *, where: str = "schedule") -> Schedule:
    """Build a schedule from its spec dict; unknown keys and bad values raise ConfigError.

    >>> schedule_from_spec({"type": "cosine", "steps": 100, "min_ratio": 0.1}).total_steps
    100
    """
    if isinstance(spec, Schedule):
        return spec
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: must be a table/dict with a 'type' key, got {spec!r}")
    if "preset" in spec:
        if "type" in spec:
            raise ConfigError(f"{where}: give either 'type' or 'preset', got both ({spec['type']!r}, {spec['preset']!r})")
        kwargs = {k: v for k, v in spec.items() if k != "preset"}
        return preset(spec["preset"], **kwargs)
    name = spec.get("type")
    if name not in TYPES:
        raise ConfigError(f"{where}.type: unknown schedule type {name!r}; choose one of {', '.join(TYPES)} (or a 'preset')")
    cls = TYPES[name]
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    if cls is WSD and "steps" in spec:
        spec = _wsd_stable_from_steps(spec, where)
    kwargs = {}
    for key, value in spec.items():
        if key == "type":
            continue
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r} for type {name!r} (allowed: {', '.join(known)})")
        kwargs[key] = _convert(f"{where}.{key}", _kind(str(known[key].type)), value)
    for f in known.values():
        if f.default is MISSING and f.default_factory is MISSING and f.name not in kwargs:  # type: ignore[misc]
            raise ConfigError(f"{where}: missing key {f.name!r} for type {name!r}")
    return cls(**kwargs)


def _wsd_stable_from_steps(spec: dict[str, Any], where: str) -> dict[str, Any]:
    """``steps`` (total length, the CLI's ``--steps``) -> ``stable``, the field WSD stores."""
    total = _as_int(f"{where}.steps", spec["steps"])
    for key in ("warmup", "decay"):
        if key not in spec:
            raise ConfigError(f"{where}: missing key {key!r} for type 'wsd'")
    warmup = _as_int(f"{where}.warmup", spec["warmup"])
    decay = _as_int(f"{where}.decay", spec["decay"])
    stable = total - warmup - decay
    if stable < 0:
        raise ConfigError(f"{where}.decay: warmup ({warmup}) + decay ({decay}) is longer than the schedule (steps={total})")
    if "stable" in spec and _as_int(f"{where}.stable", spec["stable"]) != stable:
        raise ConfigError(f"{where}.steps: steps={total} disagrees with warmup ({warmup}) + stable ({spec['stable']}) "
                          f"+ decay ({decay}); give steps or stable, not both")
    out = {k: v for k, v in spec.items() if k != "steps"}
    out["stable"] = stable
    return out


def schedule_fingerprint(schedule: Schedule | dict[str, Any]) -> str:
    """Short stable hash of a schedule (key order and spelling of the spec do not matter)."""
    # via the schedule: {"steps": 100} and {"stable": ...} for the same WSD hash alike
    spec = schedule_to_spec(schedule_from_spec(schedule) if isinstance(schedule, dict) else schedule)
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
