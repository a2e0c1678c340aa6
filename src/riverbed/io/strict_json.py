"""Strict JSON for everything riverbed writes (run.json, metrics.jsonl, state.json, merge.json).

JSON has no NaN or Infinity, and strict parsers (browsers, ``jq``, Go, Rust) reject Python's
bare ``NaN``. A non-finite float is written as ``null``; inside an object a sibling key
``<key>_nonfinite`` says which value it was, so nothing is lost silently::

    >>> dumps({"step": 3, "loss": float("nan")})
    '{"step": 3, "loss": null, "loss_nonfinite": "nan"}'

Readers treat ``null`` as "no finite value".
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

NONFINITE_SUFFIX = "_nonfinite"
MAX_JSON_BYTES = 256 * 2**20  # a state.json, merge.json or law file is kilobytes: bound what is read


def _word(v: float) -> str:
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def finite(obj: Any, *, mark: bool = True) -> Any:
    """``obj`` with every non-finite float replaced by None (recursively); ``mark``: plus
    ``<key>_nonfinite`` ("nan", "inf", "-inf") beside such a value in a dict."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        out: dict[Any, Any] = {}
        for k, v in obj.items():
            if isinstance(v, float) and not math.isfinite(v):
                out[k] = None
                if mark:
                    out[f"{k}{NONFINITE_SUFFIX}"] = _word(v)
            else:
                out[k] = finite(v, mark=mark)
        return out
    if isinstance(obj, (list, tuple)):
        return [finite(v, mark=mark) for v in obj]
    return obj


def number_or_null(v: float) -> float | None:
    """A float for strict JSON: itself if finite, else None (numpy scalars become Python floats)."""
    return float(v) if math.isfinite(v) else None


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`finite` ``(obj)`` with ``allow_nan=False`` (never a bare NaN)."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)


def read_json(path: str | os.PathLike[str], error: type[Exception], *, name: str | None = None) -> Any:
    """Parse the JSON file ``path``; an unreadable or invalid one raises ``error`` naming it
    (``name``: how the message names it, default the path). A missing file is the caller's
    to explain (what it should have been), so it is checked before this is called."""
    label = name if name is not None else str(path)
    try:
        with open(path, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise error(f"{label}: not a regular file")
            data = fh.read(MAX_JSON_BYTES + 1)
    except OSError as exc:
        raise error(f"{label}: unreadable ({exc.strerror or exc})") from None
    if len(data) > MAX_JSON_BYTES:
        raise error(f"{label}: larger than {MAX_JSON_BYTES // 2**20} MiB, too large to be riverbed's JSON")
    try:
        return json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise error(f"{label}: not valid JSON ({exc})") from None
