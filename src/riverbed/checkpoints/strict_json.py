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
from typing import Any

NONFINITE_SUFFIX = "_nonfinite"


def _word(v: float) -> str:
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (plus ``<key>_nonfinite`` in dicts)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        out: dict[Any, Any] = {}
        for k, v in obj.items():
            if isinstance(v, float) and not math.isfinite(v):
                out[k] = None
                out[f"{k}{NONFINITE_SUFFIX}"] = _word(v)
            else:
                out[k] = finite(v)
        return out
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`finite` ``(obj)`` with ``allow_nan=False`` (never a bare NaN)."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)
