"""The shape of ``run.json``, checked on read before anything is built from it.

A hand-edited or damaged manifest is refused with a :class:`~riverbed.errors.RunError` that names the
key (``branches.main.progress.step``) and what was expected, and the file is never rewritten: every verb
exits 2 with that message until the file is fixed. What :func:`check_manifest` accepts is exactly what
the writer (:mod:`riverbed.runs.manifest`) produces, so a manifest riverbed wrote always reads back:
step and token counts are integers, FLOPs finite numbers, a held-out loss a finite number or ``null``
(with ``eval_loss_nonfinite`` saying which non-finite value it was), a pid a positive integer.

>>> check_manifest({"format": "riverbed.run/1", "branches": {}}, "run.json")
>>> check_manifest({"format": "riverbed.run/1", "branches": [], }, "run.json")
Traceback (most recent call last):
riverbed.errors.RunError: run.json: branches must be an object, got list
"""

from __future__ import annotations

import math
from pathlib import PurePosixPath
from typing import Any

from riverbed.errors import RunError

FORMAT = "riverbed.run/1"
MAX_INT = 2**63 - 1  # counts beyond int64 cannot come from a real run (and overflow numpy/torch)
MAX_PID = 2**31 - 1
NONFINITE_WORDS = ("nan", "inf", "-inf")


def _type(v: Any) -> str:
    return "null" if v is None else {dict: "object", list: "list", str: "string", bool: "boolean"}.get(type(v), type(v).__name__)


def _fail(where: str, key: str, expected: str, v: Any) -> RunError:
    shown = repr(v) if not isinstance(v, (dict, list)) else _type(v)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return RunError(f"{where}: {key} must be {expected}, got {shown}")


def _obj(d: dict[str, Any], key: str, where: str, path: str, *, optional: bool = True) -> dict[str, Any] | None:
    v = d.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, dict):
        raise _fail(where, path, "an object", v)
    return v


def _count(v: Any, where: str, path: str, *, maximum: int = MAX_INT, minimum: int = 0) -> None:
    # An integral float (1000000.0, what some tools write for a count) is the same integer.
    whole = isinstance(v, int) or (isinstance(v, float) and math.isfinite(v) and v.is_integer())
    if isinstance(v, bool) or not whole or not minimum <= v <= maximum:
        raise _fail(where, path, f"an integer in [{minimum}, {maximum}]", v)


def _number(v: Any, where: str, path: str, *, nullable: bool = False) -> None:
    if v is None and nullable:
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 and "loss" not in path:
        raise _fail(where, path, "a finite number" + (" or null" if nullable else "") + ("" if "loss" in path else " >= 0"), v)


def _str(d: dict[str, Any], key: str, where: str, path: str, *, nullable: bool = True) -> None:
    v = d.get(key)
    if not (isinstance(v, str) or (v is None and nullable)):
        raise _fail(where, path, "a string" + (" or null" if nullable else ""), v)


def check_point(d: Any, where: str, path: str) -> None:
    """A position along a lineage (fork, progress, final, a milestone)."""
    if not isinstance(d, dict):
        raise _fail(where, path, "an object", d)
    for key in ("step", "tokens"):
        if key not in d:
            raise RunError(f"{where}: {path}.{key} is missing")
        _count(d[key], where, f"{path}.{key}")
    if "flops" not in d:
        raise RunError(f"{where}: {path}.flops is missing")
    _number(d["flops"], where, f"{path}.flops")
    for key in ("eval_loss", "heldout_loss"):
        _number(d.get(key), where, f"{path}.{key}", nullable=True)
    for key in ("eval_loss_nonfinite", "heldout_loss_nonfinite"):
        if d.get(key) is not None and d[key] not in NONFINITE_WORDS:
            raise _fail(where, f"{path}.{key}", f"one of {', '.join(NONFINITE_WORDS)} or null", d[key])
    ckpt = d.get("checkpoint")
    if ckpt is not None:
        if not isinstance(ckpt, str):
            raise _fail(where, f"{path}.checkpoint", "a string or null", ckpt)
        p = PurePosixPath(ckpt)
        if p.is_absolute() or ".." in p.parts:
            raise _fail(where, f"{path}.checkpoint", "a path inside the run directory", ckpt)


def check_branch(d: Any, where: str, path: str) -> None:
    """One record of ``branches``."""
    if not isinstance(d, dict):
        raise _fail(where, path, "an object", d)
    for key in ("name", "kind"):
        _str(d, key, where, f"{path}.{key}", nullable=False)
    for key in ("parent", "status", "error", "created", "updated", "host"):
        _str(d, key, where, f"{path}.{key}")
    _obj(d, "schedule", where, f"{path}.schedule")
    for key in ("fork", "progress", "final"):
        if d.get(key) is not None:
            check_point(d[key], where, f"{path}.{key}")
    milestones = d.get("milestones", [])
    if not isinstance(milestones, list):
        raise _fail(where, f"{path}.milestones", "a list", milestones)
    for i, m in enumerate(milestones):
        check_point(m, where, f"{path}.milestones[{i}]")
    events = d.get("events", [])
    if not isinstance(events, list):
        raise _fail(where, f"{path}.events", "a list of objects", events)
    for i, e in enumerate(events):
        if not isinstance(e, dict):
            raise _fail(where, f"{path}.events[{i}]", "an object", e)
    if d.get("pid") is not None:
        _count(d["pid"], where, f"{path}.pid", minimum=1, maximum=MAX_PID)
    job = _obj(d, "job", where, f"{path}.job")
    if job is not None:
        for key in ("backend", "id"):
            _str(job, key, where, f"{path}.job.{key}", nullable=False)


def check_manifest(d: Any, where: str) -> None:
    """RunError naming the first key of ``d`` (parsed run.json) that is not what riverbed writes."""
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        got = d.get("format") if isinstance(d, dict) else _type(d)
        raise RunError(f"{where}: format is {got!r}, expected {FORMAT!r}")
    _str(d, "created", where, "created")
    _obj(d, "config", where, "config")
    model = _obj(d, "model", where, "model")
    if model is not None:
        if model.get("n_params") is not None:
            _count(model["n_params"], where, "model.n_params")
        if model.get("flops_per_token") is not None:
            _number(model["flops_per_token"], where, "model.flops_per_token")
    branches = d.get("branches")
    if not isinstance(branches, dict):
        raise RunError(f"{where}: branches must be an object, got {_type(branches)}")
    for name, b in branches.items():
        check_branch(b, where, f"branches.{name}")
